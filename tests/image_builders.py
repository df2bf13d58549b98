"""Small images built in memory for the tests (nothing binary is committed)."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pillow_heif
from PIL import Image

pillow_heif.register_heif_opener()  # so that encode(..., "HEIF") writes HEIC (cartoonkit.imageio does the same)


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


def tiled_tiff(array: np.ndarray, tile_width: int, tile_height: int, deflate: bool = False) -> bytes:
    """A little-endian tiled TIFF of an ``(H, W, C)`` uint8 or uint16 array, written by hand (Pillow writes
    strips only). Tiles are ``tile_width x tile_height`` (multiples of 16), zero-padded at the edges."""
    height, width, channels = array.shape
    tiles = []
    for top in range(0, height, tile_height):
        for left in range(0, width, tile_width):
            tile = np.zeros((tile_height, tile_width, channels), array.dtype)
            part = array[top:top + tile_height, left:left + tile_width]
            tile[:part.shape[0], :part.shape[1]] = part
            raw = tile.astype(array.dtype.newbyteorder("<")).tobytes()
            tiles.append(zlib.compress(raw) if deflate else raw)
    return _tiff(width, height, channels, array.dtype.itemsize * 8, deflate, tile_width, tile_height, tiles)


def tiff_tile_bomb(side: int = 64, tile: int = 12288) -> bytes:
    """A ~200-byte TIFF of ``side x side`` RGBA 16-bit pixels in one ``tile x tile`` deflate tile: the decoder
    allocates the whole tile (``tile * tile * 8`` bytes) before it finds the data short."""
    return _tiff(side, side, 4, 16, True, tile, tile, [zlib.compress(b"\x00" * 64)])


def _tiff(width: int, height: int, channels: int, bits: int, deflate: bool, tile_width: int, tile_height: int,
          tiles: list[bytes]) -> bytes:
    short, long_ = 3, 4
    entries = [(256, long_, [width]), (257, long_, [height]), (258, short, [bits] * channels),
               (259, short, [8 if deflate else 1]), (262, short, [2 if channels >= 3 else 1]),
               (277, short, [channels]), (284, short, [1]), (322, long_, [tile_width]), (323, long_, [tile_height]),
               (324, long_, [0] * len(tiles)), (325, long_, [len(t) for t in tiles])]
    if channels in (2, 4):
        entries.append((338, short, [2]))  # ExtraSamples: unassociated alpha
    entries.sort()

    def size(kind, values):
        return len(values) * (2 if kind == short else 4)

    extra_offset = 8 + 2 + 12 * len(entries) + 4  # values that do not fit in 4 bytes follow the IFD
    position = extra_offset + sum(size(k, v) for _, k, v in entries if size(k, v) > 4)
    offsets = []
    for t in tiles:
        offsets.append(position)
        position += len(t)
    ifd, extra = struct.pack("<H", len(entries)), b""
    for tag, kind, values in entries:
        values = offsets if tag == 324 else values
        packed = struct.pack(f"<{len(values)}{'H' if kind == short else 'I'}", *values)
        if len(packed) <= 4:
            ifd += struct.pack("<HHI", tag, kind, len(values)) + packed.ljust(4, b"\x00")
        else:
            ifd += struct.pack("<HHII", tag, kind, len(values), extra_offset + len(extra))
            extra += packed
    return b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0) + extra + b"".join(tiles)


def mpo(arrays: list[np.ndarray], **options) -> bytes:
    """A multi-picture JPEG (what stereo and depth cameras write) of these ``(H, W, 3)`` pictures, first first."""
    first, *rest = (Image.fromarray(a) for a in arrays)
    return encode(first, "MPO", save_all=True, append_images=rest, **options)
