"""Images in: bytes or path -> uint8 tensor. Encoding images is :mod:`cartoonkit.imageencode`; writing files,
:func:`cartoonkit.fileio.write_atomic`.

**Decoding** (:func:`read_image`, :func:`decode_pil`): any common format becomes one canonical layout, a
contiguous CPU ``uint8`` tensor ``(3, H, W)`` in RGB plus an optional ``(1, H, W)`` alpha
(:class:`DecodedImage`), so no other module ever has to think about Pillow modes, EXIF orientation, palettes or
16-bit data; the limits on untrusted input (size, pixels) are checked before any pixel is decoded.

Every problem with an input raises :class:`~cartoonkit.errors.InvalidImageError` whose
message starts with ``"<name>: "``; Pillow's own exceptions never escape.

Decisions worth knowing:

* A fully opaque alpha channel (every value 255) is dropped (``alpha=None``): it carries
  no information, and ``None`` lets callers skip all alpha handling.
* The formats read are :data:`~cartoonkit.formats.READ_FORMATS` (JPEG, MPO, PNG, WEBP, HEIC/HEIF, AVIF,
  JPEG XL, TIFF, JPEG 2000, BMP, GIF, Netpbm), recognised by content; the other formats Pillow knows
  (PSD, ICO, DDS, ...) are refused by name, and their decoders never see the file.
* Images with several frames (animated GIF/PNG/WEBP/AVIF, multi-page TIFF, an MPO's second picture)
  use the first frame and say so in :attr:`DecodedImage.notes`; a HEIF file with several images
  uses its primary image.
* 16-bit data is reduced to 8 bits by rounding ``value / 257`` for greyscale (so 65535
  becomes 255 and ``257 * k`` becomes ``k``); 16-bit colour PNG/TIFF are reduced by
  Pillow's decoder, which keeps the high byte (``value >> 8``).
* Embedded ICC colour profiles are applied: the pixels are converted to sRGB (relative colorimetric, see
  :mod:`cartoonkit.colour`); an image without a profile, or with an sRGB one, is used as stored.
* Orientation: EXIF for JPEG, PNG, WEBP, TIFF, AVIF; HEIF's and JPEG XL's own (applied by libheif and
  libjxl, which their specifications make the authority over an EXIF copy).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import stat
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from . import colour
from .errors import InvalidImageError, reason_of
from .formats import (  # re-exported: the torch-free half of this module
    DEFAULT_MAX_FILE_BYTES,
    DEFAULT_MAX_PIXELS,
    IMAGE_SUFFIXES,
    JXL_EXTRA,
    READ_FORMATS,
    UNSUPPORTED_PILLOW_FORMATS,
    ImageLimits,
)
from .imageencode import check_rgb_alpha
from .layout import hwc_to_chw

__all__ = [
    "DEFAULT_MAX_FILE_BYTES",
    "DEFAULT_MAX_PIXELS",
    "IMAGE_SUFFIXES",
    "check_dimensions",
    "DecodedImage",
    "ImageLimits",
    "decode_pil",
    "read_image",
]

_ANIMATED_FORMATS = frozenset({"GIF", "PNG", "WEBP", "AVIF"})
_EXIF_ORIENTATION = ExifTags.Base.Orientation
# Formats whose decoder applies the orientation itself (HEIF's irot/imir, JPEG XL's codestream field).
_SELF_ORIENTED = frozenset({"HEIF", "JXL"})
_JXL_CODESTREAM = b"\xff\x0a"
_JXL_CONTAINER = b"\x00\x00\x00\x0cJXL \r\n\x87\n"

# HEIC/HEIF through libheif (pillow-heif, a core dependency: every iPhone photo is HEIC). Registering adds a
# Pillow plugin and nothing else; thumbnails are not decoded, only the image itself. Should an environment
# lack it (one installed before it became a dependency), everything else still works and a HEIC says why.
try:
    import pillow_heif

    pillow_heif.register_heif_opener(thumbnails=False)
except ImportError:
    pillow_heif = None
_HEIF_BRANDS = (b"ftypheic", b"ftypheix", b"ftyphevc", b"ftypheim", b"ftypheis", b"ftypmif1", b"ftypmsf1")
try:  # JPEG XL: the optional jxl extra (pillow-jxl-plugin) registers its plugin on import
    import pillow_jxl  # noqa: F401

    HAVE_JXL = True
except ImportError:
    HAVE_JXL = False
Image.init()  # every plugin registered, so that the list below knows what this Pillow was built with
_OPEN_FORMATS = [f for f in READ_FORMATS if f in Image.ID]


# eq=False: comparing tensors field by field is ambiguous; identity is what makes sense.
@dataclass(frozen=True, eq=False)
class DecodedImage:
    """A decoded image in the one layout the rest of cartoonkit works with.

    ``alpha`` is ``None`` when the source has no transparency, including when its alpha
    channel is fully opaque (see the module docstring).
    """

    rgb: torch.Tensor  # uint8, (3, H, W), RGB, contiguous, CPU
    alpha: torch.Tensor | None  # uint8, (1, H, W), or None
    name: str  # what error messages and reports call this image
    format: str  # Pillow's format name ("JPEG", "PNG", ...); "array" for arrays
    notes: tuple[str, ...] = ()  # things the user should know about the conversion

    def __post_init__(self) -> None:
        check_rgb_alpha(self.rgb, self.alpha)


# --------------------------------------------------------------------------- decoding


def read_image(
    source: str | os.PathLike | bytes,
    *,
    name: str | None = None,
    limits: ImageLimits = ImageLimits(),
) -> DecodedImage:
    """Decode an image file (path) or encoded image bytes.

    ``name`` is what error messages and notes call the image; it defaults to the path, or
    ``"<bytes>"`` for bytes. Raises :class:`InvalidImageError` for every problem.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        name = "<bytes>" if name is None else name
        data = bytes(source)
        _check_byte_count(len(data), name, limits)
    elif isinstance(source, (str, os.PathLike)):
        name = os.fsdecode(source) if name is None else name
        data = read_file_bytes(source, name, limits)
    else:
        raise TypeError(f"read_image expects a path or bytes, got {type(source).__name__}")

    if data.startswith((_JXL_CODESTREAM, _JXL_CONTAINER)):
        _check_jxl(data, name, limits)  # its plugin decodes every pixel inside Image.open
    with _pillow_errors(name, limits, len(data)), _quiet_pillow():
        try:
            image = Image.open(io.BytesIO(data), formats=_OPEN_FORMATS)
        except UnidentifiedImageError:
            _refuse_other_format(data, name)
            raise
    with image:
        return decode_pil(image, name=name, limits=limits, size=len(data))


def _refuse_other_format(data: bytes, name: str) -> None:
    """Name what a file is when it is an image in a format cartoonkit does not read (else return)."""
    if data.startswith((_JXL_CODESTREAM, _JXL_CONTAINER)):
        raise InvalidImageError(f"{name}: JPEG XL image: reading it needs pillow-jxl-plugin, "
                                f"pip install 'cartoonkit[{JXL_EXTRA}]'")
    if data[4:12] in _HEIF_BRANDS and "HEIF" not in _OPEN_FORMATS:
        raise InvalidImageError(f"{name}: HEIC/HEIF image: reading it needs pillow-heif (a dependency of "
                                "cartoonkit: pip install pillow-heif)")
    if data[4:12] in (b"ftypavif", b"ftypavis") and "AVIF" not in _OPEN_FORMATS:
        raise InvalidImageError(f"{name}: AVIF image: this Pillow was built without AVIF (Pillow 11.3 or later "
                                "reads it)")
    try:  # identification only: the header is parsed, no pixel is decoded
        with Image.open(io.BytesIO(data)) as other:
            kind = other.format
    except Exception:
        return
    what = UNSUPPORTED_PILLOW_FORMATS.get(kind, f"{kind} image")
    raise InvalidImageError(f"{name}: {what} ({kind}), not a photo format cartoonkit reads; "
                            "save it as JPEG, PNG, WEBP or TIFF")


def _check_jxl(data: bytes, name: str, limits: ImageLimits) -> None:
    """The pixel limit from a JPEG XL header, before its decoder (which decodes in ``Image.open``) runs."""
    size = jxl_size(data)
    if size is None:  # the decoder would run unbounded: refuse what cannot be checked
        raise InvalidImageError(f"{name}: JPEG XL file whose size header cannot be found (truncated or corrupt)")
    check_dimensions(size, name, limits)


def jxl_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` from a JPEG XL codestream's SizeHeader (ISO/IEC 18181-1, A.3.1), or from the
    codestream inside a container; None when the header cannot be found (the decoder then reports it)."""
    if data.startswith(_JXL_CONTAINER):
        data = _jxl_codestream(data)
        if data is None:
            return None
    if not data.startswith(_JXL_CODESTREAM) or len(data) < 12:
        return None
    bits = int.from_bytes(data[2:12], "little")  # the SizeHeader is at most 66 bits, least significant first
    position = 0

    def read(count: int) -> int:
        nonlocal position
        value = (bits >> position) & ((1 << count) - 1)
        position += count
        return value

    def u32() -> int:
        return read((9, 13, 18, 30)[read(2)])

    small = read(1)
    height = (read(5) + 1) * 8 if small else u32() + 1
    ratio = read(3)
    if ratio:
        numerator, denominator = ((1, 1), (12, 10), (4, 3), (3, 2), (16, 9), (5, 4), (2, 1))[ratio - 1]
        return height * numerator // denominator, height
    width = (read(5) + 1) * 8 if small else u32() + 1
    return width, height


def _jxl_codestream(data: bytes) -> bytes | None:
    """The start of the codestream in a JPEG XL container: the ``jxlc`` box, or the first ``jxlp`` box."""
    position = 0
    while position + 8 <= len(data):
        size, kind = int.from_bytes(data[position:position + 4], "big"), data[position + 4:position + 8]
        header = 8
        if size == 1:
            size, header = int.from_bytes(data[position + 8:position + 16], "big"), 16
        elif size == 0:
            size = len(data) - position
        if kind == b"jxlc":
            return data[position + header:position + size]
        if kind == b"jxlp":
            return data[position + header + 4:position + size]  # after its 4-byte index
        if size < header:
            return None
        position += size
    return None


def decode_pil(
    image: Image.Image,
    *,
    name: str = "<PIL image>",
    limits: ImageLimits = ImageLimits(),
    size: int | None = None,
) -> DecodedImage:
    """Convert a (possibly not yet loaded) Pillow image to a :class:`DecodedImage`.

    ``size``: the encoded file's length in bytes, when known, for the message about a truncated file.

    The pixel limit is checked from ``image.size`` before any pixel data is decoded, so
    a lazily opened image that declares a huge size is rejected cheaply. The caller keeps
    ownership of ``image`` (it is loaded and rewound to its first frame, not closed).
    """
    check_dimensions(image.size, name, limits)
    _check_tiff_tiles(image, name, limits)
    notes: list[str] = []
    with _pillow_errors(name, limits, size), _quiet_pillow():
        _add_note(notes, _primary_image_note(image) if image.format == "HEIF" else _rewind_to_first_frame(image))
        _add_note(notes, _bit_depth_note(image))  # before load(): needs the undecoded tiles
        image.load()
        icc = image.info.get("icc_profile")  # before the conversions below, which drop ``info``
        if not icc and image.format == "HEIF":
            icc, note = colour.nclx_profile(image.info.get("nclx_profile"))
            _add_note(notes, note)
        if image.format in _SELF_ORIENTED:
            _add_note(notes, _own_orientation_note(image))
        else:
            image, note = _apply_exif_orientation(image)
            _add_note(notes, note)
        image, conversion_notes = _to_rgb_or_rgba(image, icc)
        notes.extend(conversion_notes)
        array = np.array(image, dtype=np.uint8)
    rgb, alpha = _split_channels(array)
    return DecodedImage(
        rgb=rgb, alpha=alpha, name=name, format=image.format or "PIL", notes=tuple(notes)
    )


def read_file_bytes(path: str | os.PathLike, name: str, limits: ImageLimits = ImageLimits()) -> bytes:
    """Read the whole file once, after cheap ``stat`` checks, so no handle stays open; an
    :class:`InvalidImageError` naming ``name`` for a missing, unreadable, special or too large file."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise InvalidImageError(f"{name}: file does not exist") from None
    except (OSError, ValueError) as exc:  # ValueError: embedded NUL in the path
        raise InvalidImageError(f"{name}: cannot access file ({reason_of(exc)})") from exc
    if stat.S_ISDIR(info.st_mode):
        raise InvalidImageError(f"{name}: is a directory, not an image file")
    if not stat.S_ISREG(info.st_mode):
        raise InvalidImageError(f"{name}: is not a regular file")
    _check_byte_count(info.st_size, name, limits)
    try:
        with open(path, "rb") as file:
            data = file.read(limits.max_file_bytes + 1)  # +1: notice a file that grew
    except PermissionError:
        raise InvalidImageError(f"{name}: permission denied (file is not readable)") from None
    except OSError as exc:
        raise InvalidImageError(f"{name}: cannot read file ({reason_of(exc)})") from exc
    _check_byte_count(len(data), name, limits)
    return data


def _check_byte_count(size: int, name: str, limits: ImageLimits) -> None:
    if size == 0:
        raise InvalidImageError(f"{name}: file is empty (0 bytes)")
    if size > limits.max_file_bytes:
        raise InvalidImageError(
            f"{name}: file is {size:,} bytes, larger than the limit of "
            f"{limits.max_file_bytes:,} bytes"
        )


def check_dimensions(size: tuple[int, int], name: str, limits: ImageLimits) -> None:
    """Refuse zero-size images and images over the pixel limit; ``size`` is ``(width, height)``."""
    width, height = size
    if width <= 0 or height <= 0:
        raise InvalidImageError(f"{name}: image has zero size ({width}x{height} pixels)")
    if width * height > limits.max_pixels:
        raise _too_many_pixels(name, width * height, limits.max_pixels, f"{width}x{height} = ")


def _check_tiff_tiles(image: Image.Image, name: str, limits: ImageLimits) -> None:
    """Refuse TIFF tiles larger than the pixel limit: libtiff allocates (and clears) a whole tile's buffer
    whatever the image size, so a 200-byte file declaring 64x64 pixels in 12288x12288 tiles would cost a
    gigabyte. Legitimate tiles are a few hundred pixels a side."""
    if image.format != "TIFF":
        return
    tags = getattr(image, "tag_v2", {})
    tile_width, tile_height = tags.get(322), tags.get(323)  # TileWidth, TileLength
    if isinstance(tile_width, int) and isinstance(tile_height, int) and tile_width * tile_height > limits.max_pixels:
        raise InvalidImageError(f"{name}: TIFF tiles of {tile_width}x{tile_height} = {tile_width * tile_height:,} "
                                f"pixels each, more than the pixel limit of {limits.max_pixels:,}")


def _too_many_pixels(name: str, pixels: int, limit: int, dims: str = "") -> InvalidImageError:
    return InvalidImageError(
        f"{name}: image is {dims}{pixels:,} pixels, more than the pixel limit of {limit:,}"
    )


@contextlib.contextmanager
def _pillow_errors(name: str, limits: ImageLimits, size: int | None = None) -> Iterator[None]:
    """Turn whatever Pillow raises on a bad file into an :class:`InvalidImageError`.

    Pillow signals corrupt data with many exception types (OSError, SyntaxError,
    ValueError, EOFError, struct.error, IndexError, TypeError, ...), so all are caught.
    """
    try:
        yield
    except InvalidImageError:
        raise
    except UnidentifiedImageError:
        raise InvalidImageError(f"{name}: not an image (unrecognised format)") from None
    except Image.DecompressionBombError as exc:
        raise _pillow_bomb_error(name, exc, limits) from None
    except MemoryError:
        raise InvalidImageError(f"{name}: not enough memory to decode this image") from None
    except OSError as exc:
        if not str(exc).startswith(_PILLOW_TRUNCATED):
            raise InvalidImageError(f"{name}: truncated or corrupt image data ({reason_of(exc)})") from exc
        raise InvalidImageError(_truncated_message(name, size)) from exc
    except Exception as exc:
        raise InvalidImageError(f"{name}: truncated or corrupt image data ({reason_of(exc)})") from exc


_PILLOW_TRUNCATED = "image file is truncated"
"""How Pillow's ImageFile.load begins the error for data that ends early. Its "(N bytes not processed)" counts the
bytes left in its decoder's buffer, not what is missing, so it is not passed on."""


def _truncated_message(name: str, size: int | None) -> str:
    if size is None:
        return f"{name}: truncated image: its data ends before the whole picture is decoded"
    return f"{name}: truncated image: the file ends after {size:,} bytes, before the whole picture is decoded"


def _pillow_bomb_error(
    name: str, exc: Image.DecompressionBombError, limits: ImageLimits
) -> InvalidImageError:
    """Pillow's own bomb check fires in ``Image.open`` above ``2 * MAX_IMAGE_PIXELS``.

    Normally our smaller limit is the one that matters; if the caller raised
    ``limits.max_pixels`` above Pillow's, the message names Pillow's limit instead.
    """
    match = re.search(r"\((\d+) pixels\)", str(exc))
    if match is None:
        return InvalidImageError(f"{name}: image is too large ({exc})")
    pixels = int(match.group(1))
    if pixels > limits.max_pixels:
        return _too_many_pixels(name, pixels, limits.max_pixels)
    return InvalidImageError(
        f"{name}: image is {pixels:,} pixels, more than Pillow's limit of "
        f"{2 * (Image.MAX_IMAGE_PIXELS or 0):,} (PIL.Image.MAX_IMAGE_PIXELS)"
    )


@contextlib.contextmanager
def _quiet_pillow() -> Iterator[None]:
    """Silence Pillow's warnings while decoding: we report problems ourselves.

    ``DecompressionBombWarning`` is redundant with our own pixel limit, and the
    "Corrupt EXIF data" warnings are turned into notes. Unlike setting
    ``Image.MAX_IMAGE_PIXELS``, this changes no state other code relies on.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        warnings.filterwarnings("ignore", module=r"PIL\.")
        yield


def _add_note(notes: list[str], note: str | None) -> None:
    if note:
        notes.append(note)


def _rewind_to_first_frame(image: Image.Image) -> str | None:
    """Select frame 0; for multi-frame images return a note saying only it is used."""
    try:
        frames = image.n_frames if getattr(image, "is_animated", False) else 1
    except Exception:  # a damaged later frame must not prevent using the first one
        frames = 0
    if image.tell() != 0:
        image.seek(0)
    if frames == 1:
        return None
    kind = "animated image" if image.format in _ANIMATED_FORMATS else \
        "multi-picture JPEG" if image.format == "MPO" else "multi-frame image"
    count = f" of {frames}" if frames else ""
    return f"{kind}: first frame{count} used"


def _primary_image_note(image: Image.Image) -> str | None:
    """A HEIF file may hold several images (a burst, a live photo's still); the primary one is the photo,
    and pillow-heif opens it first, so no seeking here."""
    count = len(getattr(image, "_heif_file", None) or ()) or getattr(image, "n_frames", 1)
    return f"HEIF file with {count} images: the primary image used" if count > 1 else None


def _own_orientation_note(image: Image.Image) -> str | None:
    original = image.info.get("original_orientation")  # pillow-heif: what the file's EXIF said
    if isinstance(original, int) and original in range(2, 9):
        return f"HEIF orientation {original} applied"
    return None


def _bit_depth_note(image: Image.Image) -> str | None:
    """Say when the source has 16 bits per sample, which we reduce to 8."""
    if image.mode.startswith("I"):
        return "16-bit image reduced to 8 bits"
    for tile in getattr(image, "tile", None) or ():
        args = tile[3] if len(tile) > 3 else None
        rawmode = args if isinstance(args, str) else (args[0] if args else None)
        if isinstance(rawmode, str) and ";16" in rawmode:
            return "16-bit image reduced to 8 bits"
    return None


def _apply_exif_orientation(image: Image.Image) -> tuple[Image.Image, str | None]:
    """Rotate/flip as the EXIF orientation says; a broken EXIF block means no rotation."""
    unreadable = "EXIF data is unreadable: orientation not applied"
    try:
        exif = image.getexif()
        orientation = exif.get(_EXIF_ORIENTATION, 1)
    except Exception:
        return image, unreadable
    if not exif and image.info.get("exif"):  # a block is present but nothing parsed
        return image, unreadable
    if orientation == 1:
        return image, None
    if orientation not in range(2, 9):
        return image, f"EXIF orientation {orientation!r} is not valid (1-8): ignored"
    try:
        rotated = ImageOps.exif_transpose(image)
    except Exception:
        return image, unreadable
    rotated.format = image.format  # transpose() makes a new image without a format
    return rotated, f"EXIF orientation {orientation} applied"


def _to_rgb_or_rgba(image: Image.Image, icc: bytes | None = None) -> tuple[Image.Image, list[str]]:
    """Convert any Pillow mode to 8-bit sRGB, or RGBA when the image has transparency; ``icc``: the embedded
    profile, applied to the data it describes (RGB after a palette is expanded, grey, CMYK)."""
    if image.mode in ("I", "I;16", "I;16L", "I;16B", "I;16N"):
        image = _reduce_16_bit(image)
    elif image.mode == "F":
        image = _with_format(image.convert("L"), image.format)  # Pillow clips to 0..255
    notes = []
    if image.mode in ("P", "PA", "1", "RGBa", "La"):  # palette / premultiplied: to the data a profile describes
        image = _with_format(image.convert("RGBA" if image.has_transparency_data else "RGB"), image.format)
    if icc:
        managed, note = colour.to_srgb(image, icc)
        if note:
            notes.append(note)
        if managed is not image:
            image = _with_format(managed, image.format)
    if image.mode == "CMYK":
        notes.append("CMYK converted to RGB")
    elif image.mode not in ("RGB", "RGBA", "L", "LA"):
        notes.append(f"{image.mode} converted to RGB")
    target = "RGBA" if image.has_transparency_data else "RGB"
    if image.mode != target:
        image = _with_format(image.convert(target), image.format)
    return image, notes


def _reduce_16_bit(image: Image.Image) -> Image.Image:
    """Scale 16-bit samples to 8 bits by rounding ``v / 257`` (65535 -> 255, 257k -> k).

    Pillow's own ``convert("L")`` clips instead of scaling, which turns almost every
    16-bit image white. Mode ``I`` (32-bit) is treated as 16-bit data and clipped to it.
    """
    values = np.clip(np.asarray(image).astype(np.int64), 0, 65_535)
    reduced = ((values + 128) // 257).astype(np.uint8)
    return _with_format(Image.fromarray(reduced), image.format)


def _with_format(image: Image.Image, format: str | None) -> Image.Image:
    """Pillow drops ``format`` on derived images; keep it for :attr:`DecodedImage.format`."""
    image.format = format
    return image


def _split_channels(array: np.ndarray) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(H, W, 3|4) array -> (3, H, W) tensor and (1, H, W) alpha, dropping opaque alpha."""
    planes = hwc_to_chw(array)
    rgb = planes[:3]
    if array.shape[2] == 3 or bool((planes[3] == 255).all()):
        return rgb, None
    return rgb, planes[3:]
