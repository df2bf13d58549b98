"""Colour management: embedded ICC profiles converted to sRGB on input, an sRGB profile written on output.

Rules (the reasons are in ``docs/robustness.md``, "Colour profiles"):

* An input with an embedded ICC profile is converted to sRGB with littlecms (Pillow's ``ImageCms``), rendering
  intent **relative colorimetric**, no black point compensation: colours inside sRGB keep their exact
  appearance and colours outside it (the saturated reds and greens of a Display P3 or Adobe RGB photo) are
  clipped to the nearest sRGB edge, as browsers show them. For the matrix profiles that cameras and phones
  write, littlecms has no perceptual tables, so the perceptual intent would give the same numbers.
* A profile that already describes sRGB (every value within one level of the identity, as the "sRGB
  IEC61966-2.1" profiles many cameras embed are) is not applied: the pixels stay exactly as stored.
* An input without a profile is taken as sRGB, as every browser does.
* Outputs carry sRGB: :data:`SRGB_ICC` in JPEG (APP2) and WEBP (ICCP), the 13-byte ``sRGB`` chunk in PNG.

:func:`matrix_profile` builds a small ICC v2 matrix/TRC profile from published primaries; cartoonkit's own sRGB
profile is built with it so that its bytes never vary (littlecms's built-in one records the time it was made).
"""

from __future__ import annotations

import functools
import hashlib
import io
import struct

import numpy as np
from PIL import Image, ImageCms

INTENT = ImageCms.Intent.RELATIVE_COLORIMETRIC
INTENT_NAME = "relative colorimetric"

D65 = (0.3127, 0.3290)
D50_XYZ = (0.9642, 1.0, 0.8249)  # the ICC profile connection space's white
SRGB_PRIMARIES = ((0.64, 0.33), (0.30, 0.60), (0.15, 0.06))
DISPLAY_P3_PRIMARIES = ((0.680, 0.320), (0.265, 0.690), (0.150, 0.060))
ADOBE_RGB_PRIMARIES = ((0.64, 0.33), (0.21, 0.71), (0.15, 0.06))
ADOBE_RGB_GAMMA = 563 / 256  # 2.19921875, as the Adobe RGB (1998) specification stores it

_BRADFORD = np.array([[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]])


def srgb_curve(count: int = 1024) -> np.ndarray:
    """The sRGB transfer function (IEC 61966-2-1) sampled at ``count`` points, 0..1 in and out."""
    v = np.linspace(0.0, 1.0, count)
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def rgb_to_xyz_matrix(primaries, white=D65) -> np.ndarray:
    """RGB -> XYZ for these primaries and white point (chromaticities ``(x, y)``), the white at Y = 1."""
    def xyz(x, y):
        return np.array([x / y, 1.0, (1 - x - y) / y])
    columns = np.stack([xyz(*p) for p in primaries], axis=1)
    scale = np.linalg.solve(columns, xyz(*white))
    return columns * scale


def adapted_to_d50(matrix: np.ndarray, white=D65) -> np.ndarray:
    """The matrix seen from the profile connection space: Bradford adaptation of ``white`` to D50 (what ICC
    matrix profiles store as their colorants)."""
    source = _BRADFORD @ (rgb_to_xyz_matrix(SRGB_PRIMARIES, white) @ np.ones(3))
    target = _BRADFORD @ np.array(D50_XYZ)
    adapt = np.linalg.inv(_BRADFORD) @ np.diag(target / source) @ _BRADFORD
    return adapt @ matrix


def matrix_profile(description: str, primaries, white=D65, gamma: float | None = None) -> bytes:
    """An ICC v2 display profile of these primaries: the sRGB curve, or a pure ``gamma``; deterministic bytes."""
    colorants = adapted_to_d50(rgb_to_xyz_matrix(primaries, white), white)
    if gamma is None:
        curve = np.round(srgb_curve() * 65535).astype(">u2").tobytes()
        trc = b"curv" + bytes(4) + struct.pack(">I", 1024) + curve
    else:  # one entry: the gamma as u8Fixed8Number
        trc = b"curv" + bytes(4) + struct.pack(">IH", 1, round(gamma * 256)) + bytes(2)
    ascii_text = description.encode("ascii") + b"\x00"
    desc = b"desc" + bytes(4) + struct.pack(">I", len(ascii_text)) + ascii_text + bytes(4 + 4 + 2 + 1 + 67)
    text = b"text" + bytes(4) + b"No copyright, use freely\x00"
    tags = [(b"desc", desc), (b"cprt", text), (b"wtpt", _xyz_tag(D50_XYZ))]
    tags += [(name, _xyz_tag(colorants[:, i])) for i, name in enumerate((b"rXYZ", b"gXYZ", b"bXYZ"))]
    tags += [(b"rTRC", trc), (b"gTRC", trc), (b"bTRC", trc)]  # the three share one copy of the curve
    table, data, offsets = b"", b"", {}
    start = 128 + 4 + 12 * len(tags)
    for name, body in tags:
        if body not in offsets:
            offsets[body] = start + len(data)
            data += body + bytes(-len(body) % 4)
        table += name + struct.pack(">II", offsets[body], len(body))
    size = start + len(data)
    header = struct.pack(">I4sI4s4s4s", size, b"lcms", 0x02100000, b"mntr", b"RGB ", b"XYZ ")
    header += struct.pack(">6H", 2026, 1, 1, 0, 0, 0) + b"acsp" + bytes(4 + 4 + 4 + 4 + 8)
    header += struct.pack(">I", 0) + _s15(D50_XYZ) + b"lcms"
    header += bytes(128 - len(header))
    return header + struct.pack(">I", len(tags)) + table + data


def _s15(values) -> bytes:
    return b"".join(struct.pack(">i", round(v * 65536)) for v in values)


def _xyz_tag(values) -> bytes:
    return b"XYZ " + bytes(4) + _s15(values)


SRGB_ICC = matrix_profile("sRGB (cartoonkit)", SRGB_PRIMARIES)
"""The sRGB profile outputs carry (JPEG APP2, WEBP ICCP): 2.6 KB, the same bytes every time."""

PNG_SRGB_CHUNK = bytes([0])
"""The body of PNG's ``sRGB`` chunk: rendering intent 0 (perceptual), the value the PNG specification suggests
for photographs (the intent is only a hint there; the chunk says "these pixels are sRGB")."""


@functools.lru_cache(maxsize=1)
def _srgb() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


_MODE_SPACE = {"RGB": "RGB", "L": "GRAY", "CMYK": "CMYK"}


@functools.lru_cache(maxsize=32)
def _transform(icc_digest: str, icc: bytes, mode: str):
    """``(transform or None, description)``: None when the profile is sRGB already. Cached: the photos of one
    camera share one profile, and building a transform costs a few milliseconds."""
    profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    description = (ImageCms.getProfileDescription(profile) or "").strip() or "an unnamed profile"
    transform = ImageCms.buildTransform(profile, _srgb(), mode, "RGB", renderingIntent=INTENT)
    if mode == "RGB" and _is_identity(transform):
        return None, description
    return transform, description


def _is_identity(transform) -> bool:
    """Every value of a 17-level grid, and every grey, lands within one level of itself."""
    levels = np.round(np.linspace(0, 255, 17)).astype(np.uint8)
    grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), axis=-1).reshape(-1, 3)
    greys = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1)
    values = np.concatenate([grid, greys])[None]
    out = np.asarray(ImageCms.applyTransform(Image.fromarray(values, "RGB"), transform))
    return int(np.abs(out.astype(int) - values.astype(int)).max()) <= 1


_SDR_TRANSFERS = {1, 2, 6, 13, 14, 15}  # BT.709, unspecified, BT.601, sRGB, BT.2020 (10/12-bit)
_HDR_TRANSFERS = {16: "PQ", 18: "HLG"}


def nclx_profile(nclx: object) -> tuple[bytes | None, str | None]:
    """A HEIF's coded colour (``nclx``: primaries and transfer as ITU-T H.273 numbers, what Android phones and
    encoders write instead of an ICC profile) as an ICC profile to convert from, and a note; ``(None, None)``
    for sRGB primaries. SDR transfers are taken as the sRGB curve (what screens show them with); HDR ones (PQ,
    HLG) would need tone mapping, which is not done: said in the note, the pixels are taken as sRGB."""
    if not isinstance(nclx, dict):
        return None, None
    primaries, transfer = nclx.get("color_primaries"), nclx.get("transfer_characteristics")
    if transfer in _HDR_TRANSFERS:
        return None, f"HDR image ({_HDR_TRANSFERS[transfer]} transfer) not tone-mapped: colours taken as sRGB"
    if primaries in (1, 2, None):
        return None, None
    if transfer not in _SDR_TRANSFERS:
        return None, f"colour transfer {transfer} (nclx) not supported: colours taken as sRGB"
    try:
        keys = ("red", "green", "blue", "white")
        points = tuple((round(float(nclx[f"color_primary_{k}_x"]), 4), round(float(nclx[f"color_primary_{k}_y"]), 4))
                       for k in keys)
        return _nclx_icc(primaries, points), None
    except (KeyError, TypeError, ValueError, np.linalg.LinAlgError):
        return None, f"colour primaries {primaries} (nclx) unreadable: colours taken as sRGB"


@functools.lru_cache(maxsize=8)
def _nclx_icc(primaries: int, points: tuple) -> bytes:
    return matrix_profile(f"HEIF nclx colour primaries {primaries}", points[:3], white=points[3])


def is_srgb(icc: bytes | None) -> bool:
    """Whether RGB pixels tagged with ``icc`` are used as stored: no profile, or one that is sRGB already (an
    unreadable profile counts as none: it is ignored)."""
    if not icc:
        return True
    try:
        transform, _ = _transform(hashlib.sha256(icc).hexdigest(), icc, "RGB")
    except Exception:
        return True
    return transform is None


def tag_jpeg(data: bytes) -> bytes:
    """A JPEG from another encoder (nvJPEG) with :data:`SRGB_ICC` in an APP2 segment, where Pillow puts it:
    after the JFIF APP0 segment when there is one, else right after the start of image."""
    segment = b"ICC_PROFILE\x00\x01\x01" + SRGB_ICC
    app2 = b"\xff\xe2" + struct.pack(">H", len(segment) + 2) + segment
    position = 2
    if data[2:4] == b"\xff\xe0":
        position += 2 + int.from_bytes(data[4:6], "big")
    return data[:position] + app2 + data[position:]


def to_srgb(image: Image.Image, icc: bytes | None) -> tuple[Image.Image, str | None]:
    """``image`` (mode RGB, RGBA, L, LA or CMYK) in sRGB, and a note saying what was done (None: nothing).

    The result is RGB or RGBA when a conversion ran; alpha is carried over untouched. A profile that cannot be
    read, or is for another colour space than the pixels, is ignored with a note: the pixels are taken as sRGB."""
    if not icc:
        return image, None
    alpha = image.getchannel("A") if image.mode in ("RGBA", "LA") else None
    base = {"RGBA": "RGB", "LA": "L"}.get(image.mode, image.mode)
    space = _MODE_SPACE.get(base)
    try:
        declared = ImageCms.ImageCmsProfile(io.BytesIO(icc)).profile.xcolor_space.strip()
    except Exception:  # littlecms refuses it: a damaged profile must not cost the photo
        return image, "embedded ICC profile is unreadable: colours taken as sRGB"
    if space is None or declared != space:
        return image, f"embedded ICC profile is for {declared or 'unknown'} data but the image is {image.mode}: ignored"
    try:
        transform, description = _transform(hashlib.sha256(icc).hexdigest(), icc, base)
    except Exception:
        return image, "embedded ICC profile cannot be used (littlecms refused it): colours taken as sRGB"
    if transform is None:
        return image, None
    source = image if alpha is None else image.convert(base)
    converted = ImageCms.applyTransform(source, transform)
    if alpha is not None:
        converted.putalpha(alpha)
    return converted, f"colours converted from the embedded profile ({description}) to sRGB, {INTENT_NAME}"
