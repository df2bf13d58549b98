"""File size, encode and decode time, and fidelity of one image per output format.

Encoding and decoding go through the package's own :func:`~cartoonkit.imageencode.encode_image` and
:func:`~cartoonkit.imageio.read_image`, with the options the CLI writes files with, so the numbers
are what a user of ``cartoonkit run --format ...`` gets.
"""

from __future__ import annotations

import numpy as np
import torch

from ..formats import normalise_format
from ..imageencode import encode_image
from ..imageio import read_image
from ..timing import median_seconds
from .quality import psnr

_CPU = torch.device("cpu")  # the codecs run on the CPU


def _median_ms(fn, repeats: int) -> float:
    """Median of ``repeats`` timed calls after one warm-up (codec initialisation, first allocations), in ms."""
    return median_seconds(fn, repeats, _CPU, warmup=1) * 1e3


def format_table(image: np.ndarray, formats=("png", "jpg", "webp"), quality: int = 95,
                 repeats: int = 5) -> list[dict]:
    """One row per format for an ``(H, W, 3)`` uint8 image.

    Each row: ``format``, ``quality`` (``None`` for PNG, which is lossless and ignores it), ``bytes``,
    ``bits_per_pixel``, ``encode_ms`` and ``decode_ms`` (medians over ``repeats`` after one warm-up,
    decoding from bytes in memory, no disk), ``psnr`` of the decoded image against ``image`` in dB
    (``inf``: lossless) and ``max_abs_error`` in grey levels.
    """
    rgb = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).contiguous()
    pixels = image.shape[0] * image.shape[1]
    rows = []
    for fmt in formats:
        fmt = normalise_format(fmt)
        data = encode_image(rgb, format=fmt, quality=quality)
        decoded = read_image(data).rgb.permute(1, 2, 0).numpy()
        rows.append({
            "format": fmt,
            "quality": None if fmt == "png" else quality,
            "bytes": len(data),
            "bits_per_pixel": 8 * len(data) / pixels,
            "encode_ms": _median_ms(lambda fmt=fmt: encode_image(rgb, format=fmt, quality=quality), repeats),
            "decode_ms": _median_ms(lambda data=data: read_image(data), repeats),
            "psnr": psnr(decoded, image),
            "max_abs_error": int(np.abs(decoded.astype(np.int16) - image.astype(np.int16)).max()),
        })
    return rows


def png_level_table(image: np.ndarray, levels=(1, 6), repeats: int = 5) -> list[dict]:
    """PNG at each zlib ``level`` for an ``(H, W, 3)`` uint8 image: ``level``, ``bytes``, ``encode_ms``.

    Pillow's encoder with ``optimize`` off, as :func:`~cartoonkit.imageencode.encode_image` calls it; cartoonkit
    writes level 1 (BENCHMARKS.md has the measurement that chose it) and Pillow's own default is 6.
    """
    from io import BytesIO

    from PIL import Image, PngImagePlugin

    from ..colour import PNG_SRGB_CHUNK

    picture = Image.fromarray(np.ascontiguousarray(image))
    tag = PngImagePlugin.PngInfo()  # the sRGB chunk encode_image writes, so the sizes are the package's
    tag.add(b"sRGB", PNG_SRGB_CHUNK)

    def encode(level: int) -> bytes:
        buffer = BytesIO()
        picture.save(buffer, "PNG", compress_level=level, optimize=False, pnginfo=tag)
        return buffer.getvalue()

    return [{"level": level, "bytes": len(encode(level)),
             "encode_ms": _median_ms(lambda level=level: encode(level), repeats)} for level in levels]
