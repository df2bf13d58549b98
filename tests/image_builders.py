"""Small images built in memory for the tests (nothing binary is committed)."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image


def pattern(height: int = 12, width: int = 20, channels: int = 3, seed: int = 0) -> np.ndarray:
    """A random, asymmetric image: every rotation/flip of it differs from the others."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(height, width, channels), dtype=np.uint8)


def encode(image: Image.Image, format: str, **options) -> bytes:
    """``image`` saved in ``format`` (Pillow's name), as bytes."""
    buffer = io.BytesIO()
    image.save(buffer, format, **options)
    return buffer.getvalue()


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def raw_png(array: np.ndarray, color_type: int) -> bytes:
    """A PNG written by hand (Pillow cannot write 16-bit colour): ``array`` is big-endian uint16 (H, W, C)."""
    height, width = array.shape[:2]
    rows = array.astype(">u2").reshape(height, -1).tobytes()
    stride = len(rows) // height
    scanlines = b"".join(b"\x00" + rows[i * stride:(i + 1) * stride] for i in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 16, color_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(scanlines))
            + png_chunk(b"IEND", b""))


def png_bomb(width: int, height: int) -> bytes:
    """A real 8x8 PNG whose IHDR declares ``width`` x ``height`` (CRC fixed)."""
    png = encode(Image.fromarray(pattern(8, 8)), "PNG")
    body = struct.pack(">II", width, height) + png[24:29]
    return png[:8] + png_chunk(b"IHDR", body) + png[33:]


def jpeg_bomb(width: int, height: int) -> bytes:
    """A real 8x8 JPEG whose SOF0 declares ``width`` x ``height``."""
    data = bytearray(encode(Image.fromarray(pattern(8, 8)), "JPEG", quality=90))
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def gif_bomb(width: int, height: int) -> bytes:
    """A real 8x8 GIF whose logical screen and first image descriptor declare ``width`` x ``height``."""
    data = bytearray(encode(Image.fromarray(pattern(8, 8)).convert("P"), "GIF"))
    data[6:10] = struct.pack("<HH", width, height)
    desc = data.index(b"\x2c", 13 + (3 << ((data[10] & 7) + 1) if data[10] & 0x80 else 0))
    data[desc + 5:desc + 9] = struct.pack("<HH", width, height)
    return bytes(data)


def webp_bomb(width: int, height: int) -> bytes:
    """A VP8X WEBP whose canvas is ``width`` x ``height`` (the image data is a real 8x8 lossless one)."""
    vp8l = encode(Image.fromarray(pattern(8, 8)), "WEBP", lossless=True)[12:]
    vp8x = b"VP8X" + struct.pack("<I", 10) + b"\x00\x00\x00\x00" + \
        (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    body = b"WEBP" + vp8x + vp8l
    return b"RIFF" + struct.pack("<I", len(body)) + body
