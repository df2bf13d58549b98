"""Images out: a uint8 tensor -> PNG / JPEG / WEBP bytes (:func:`encode_image`), deterministic, so that the same
image always gives byte-identical output; and the one layout check of an ``(rgb, alpha)`` pair
(:func:`check_rgb_alpha`), which :class:`~cartoonkit.imageio.DecodedImage` shares.

Writing the bytes to a file is :func:`cartoonkit.fileio.write_atomic`; reading images is :mod:`cartoonkit.imageio`.

* JPEG cannot store transparency, so :func:`encode_image` drops alpha for JPEG (it is not composited onto a
  background).
* Every output says it is sRGB: an ICC profile in JPEG and WEBP, the ``sRGB`` chunk in PNG.
* No timestamps or other varying metadata are written; ``optimize`` is off (speed, BENCHMARKS.md).
"""

from __future__ import annotations

import io
import os
import threading

import torch
from PIL import Image, PngImagePlugin

from . import colour
from .errors import ConfigError, OutputError, reason_of
from .formats import normalise_format
from .layout import chw_to_hwc

__all__ = ["check_rgb_alpha", "encode_image"]

_PILLOW_FORMAT = {"png": "PNG", "jpg": "JPEG", "webp": "WEBP"}
# Largest width or height each container can store; checked so the user gets a clear error.
_MAX_SIDE = {"png": 2**31 - 1, "jpg": 65_535, "webp": 16_383}
_PNG_COMPRESS_LEVEL = 1  # OpenCV's default: several times faster than zlib's 6 (BENCHMARKS.md)


def encode_image(
    rgb: torch.Tensor,
    alpha: torch.Tensor | None = None,
    *,
    format: str = "png",
    quality: int = 95,
) -> bytes:
    """Encode a ``(3, H, W)`` uint8 tensor (any device) as PNG, JPEG or WEBP bytes.

    PNG and WEBP keep ``alpha`` (``(1, H, W)`` uint8); JPEG has no alpha and drops it.
    ``quality`` (1..100) is used by JPEG and WEBP; PNG is lossless and ignores it. The
    output is deterministic: no timestamps or other varying metadata are written.
    """
    fmt = normalise_format(format)
    _check_quality(quality)
    check_rgb_alpha(rgb, alpha)
    height, width = rgb.shape[1:]
    if max(width, height) > _MAX_SIDE[fmt]:
        raise OutputError(
            f"cannot encode a {width}x{height} image as {fmt}: it allows at most "
            f"{_MAX_SIDE[fmt]} pixels per side; choose another output format"
        )
    channels = [rgb] if alpha is None or fmt == "jpg" else [rgb, alpha]
    array = chw_to_hwc(*channels)  # each tensor moves separately: rgb and alpha may live on different devices
    try:
        return _save(Image.fromarray(array), _PILLOW_FORMAT[fmt], {**_save_options(fmt, quality), **_srgb_tag(fmt)})
    except (OSError, ValueError) as exc:
        raise OutputError(f"cannot encode image as {fmt}: {reason_of(exc)}") from exc


def _save(image: Image.Image, pillow_format: str, options: dict[str, object]) -> bytes:
    """The encoded bytes. Pillow releases the GIL while it encodes only when it writes to a file descriptor (a
    ``BytesIO`` keeps the GIL for the whole JPEG), so each thread encodes into an in-memory file of its own
    (Linux's ``memfd``) and reads the bytes back: encoder threads then run side by side. Same bytes either way."""
    file = _memory_file()
    if file is None:
        buffer = io.BytesIO()
        image.save(buffer, pillow_format, **options)
        return buffer.getvalue()
    file.seek(0)
    file.truncate()
    image.save(file, pillow_format, **options)
    file.flush()
    return os.pread(file.fileno(), os.fstat(file.fileno()).st_size, 0)


_THREAD = threading.local()


def _memory_file():
    """This thread's in-memory file (made on first use), or ``None`` where the OS has no ``memfd``."""
    file = getattr(_THREAD, "file", None)
    if file is None and hasattr(os, "memfd_create"):
        try:
            file = _THREAD.file = os.fdopen(os.memfd_create("cartoonkit-encode", os.MFD_CLOEXEC), "w+b")
        except OSError:  # out of file descriptors, or a sandbox without memfd: encode in a BytesIO
            return None
    return file


def _check_quality(quality: int) -> None:
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
        raise ConfigError(f"quality must be an integer from 1 to 100, got {quality!r}")


def _save_options(fmt: str, quality: int) -> dict[str, object]:
    """Pillow ``save`` options: fast (``optimize`` off) and without variable metadata."""
    if fmt == "png":
        return {"compress_level": _PNG_COMPRESS_LEVEL, "optimize": False}
    if fmt == "jpg":
        # Full-resolution colour (4:4:4) at high quality keeps cartoon edges crisp;
        # 4:2:0 halves colour resolution, which is fine when size matters more.
        subsampling = "4:4:4" if quality >= 90 else "4:2:0"
        return {"quality": quality, "optimize": False, "subsampling": subsampling}
    return {"quality": quality, "method": 4}


def _srgb_tag(fmt: str) -> dict[str, object]:
    """What says "sRGB" in each container: PNG's own 13-byte chunk, an ICC profile in JPEG and WEBP."""
    if fmt == "png":
        info = PngImagePlugin.PngInfo()
        info.add(b"sRGB", colour.PNG_SRGB_CHUNK)
        return {"pnginfo": info}
    return {"icc_profile": colour.SRGB_ICC}


def check_rgb_alpha(rgb: torch.Tensor, alpha: torch.Tensor | None) -> None:
    """The one layout check for an (rgb, alpha) pair, shared by decoding and encoding."""
    _check_uint8_chw(rgb, channels=3, what="rgb")
    if alpha is not None:
        _check_uint8_chw(alpha, channels=1, what="alpha")
        if alpha.shape[1:] != rgb.shape[1:]:
            raise ValueError(f"alpha is {tuple(alpha.shape)} but rgb is {tuple(rgb.shape)}")


def _check_uint8_chw(tensor: torch.Tensor, *, channels: int, what: str) -> None:
    """Programming errors (wrong layout) fail loudly, with the shape that was passed."""
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{what} must be a torch.Tensor, got {type(tensor).__name__}")
    if tensor.dtype != torch.uint8 or tensor.ndim != 3 or tensor.shape[0] != channels:
        raise ValueError(
            f"{what} must be a uint8 tensor of shape ({channels}, H, W), "
            f"got {tensor.dtype} {tuple(tensor.shape)}"
        )
