"""Tests for cartoonkit.imageio (decoding every common input, errors), cartoonkit.imageencode (encoding) and
cartoonkit.fileio (atomic writes).

All images are built here with Pillow/numpy; nothing binary is committed.
"""

from __future__ import annotations

import errno
import io
import os
import struct
import time
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from image_builders import encode, pattern
from PIL import Image, ImageFile

from cartoonkit import imageio
from cartoonkit.errors import ConfigError, InvalidImageError, OutputError
from cartoonkit.fileio import write_atomic
from cartoonkit.formats import OUTPUT_FORMATS, extension_for
from cartoonkit.imageencode import encode_image
from cartoonkit.imageio import (
    DEFAULT_MAX_PIXELS,
    DecodedImage,
    ImageLimits,
    decode_pil,
    read_image,
)

# ----------------------------------------------------------------------------- helpers


def as_hwc(decoded: DecodedImage) -> np.ndarray:
    return decoded.rgb.permute(1, 2, 0).numpy()


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def with_png_size(png: bytes, width: int, height: int) -> bytes:
    """Patch a real PNG's IHDR so it declares another size (CRC fixed, data unchanged)."""
    assert png[12:16] == b"IHDR"
    body = struct.pack(">II", width, height) + png[24:29]
    return png[:8] + png_chunk(b"IHDR", body) + png[33:]


def reference_orientation(stored: np.ndarray, orientation: int) -> np.ndarray:
    """Slow, obviously right EXIF orientation straight from the spec's table.

    For each stored pixel (r, c), the spec says where the stored 0th row and 0th column
    end up when displayed; this writes every pixel to its displayed position one by one.
    """
    h, w = stored.shape[:2]
    swapped = orientation >= 5
    out = np.zeros((w, h) + stored.shape[2:] if swapped else stored.shape, stored.dtype)
    for r in range(h):
        for c in range(w):
            target = {
                1: (r, c),  # row 0 top, column 0 left
                2: (r, w - 1 - c),  # row 0 top, column 0 right
                3: (h - 1 - r, w - 1 - c),  # row 0 bottom, column 0 right
                4: (h - 1 - r, c),  # row 0 bottom, column 0 left
                5: (c, r),  # row 0 left, column 0 top
                6: (c, h - 1 - r),  # row 0 right, column 0 top
                7: (w - 1 - c, h - 1 - r),  # row 0 right, column 0 bottom
                8: (w - 1 - c, r),  # row 0 left, column 0 bottom
            }[orientation]
            out[target] = stored[r, c]
    return out


def jpeg_with_exif(array: np.ndarray, exif: bytes) -> bytes:
    return encode(Image.fromarray(array), "JPEG", quality=95, exif=exif)


def orientation_exif(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


def raw_decode(data: bytes) -> np.ndarray:
    """Decode without any orientation handling (Pillow never rotates by itself)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Corrupt EXIF data" for the broken-EXIF tests
        with Image.open(io.BytesIO(data)) as image:
            return np.array(image.convert("RGB"))


def assert_error(excinfo: pytest.ExceptionInfo, name: str, *words: str) -> None:
    message = str(excinfo.value)
    assert message.startswith(f"{name}: "), message
    for word in words:
        assert word in message.lower(), message


@pytest.fixture
def small_png() -> bytes:
    return encode(Image.fromarray(pattern(8, 8)), "PNG")


# ----------------------------------------------------------------------------- decoding


def test_jpeg_roundtrip_from_path(tmp_path: Path) -> None:
    path = tmp_path / "photo.jpg"
    path.write_bytes(encode(Image.fromarray(pattern(30, 50)), "JPEG", quality=90))
    decoded = read_image(path)
    assert decoded.rgb.shape == (3, 30, 50)
    assert decoded.rgb.dtype == torch.uint8
    assert decoded.rgb.is_contiguous() and decoded.rgb.device.type == "cpu"
    assert decoded.alpha is None
    assert decoded.format == "JPEG"
    assert decoded.name == str(path)
    assert decoded.notes == ()
    np.testing.assert_array_equal(as_hwc(decoded), raw_decode(path.read_bytes()))


def test_bytes_source_and_name() -> None:
    data = encode(Image.fromarray(pattern()), "PNG")
    assert read_image(data).name == "<bytes>"
    assert read_image(bytearray(data), name="upload.png").name == "upload.png"


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation(orientation: int) -> None:
    data = jpeg_with_exif(pattern(12, 20), orientation_exif(orientation))
    expected = reference_orientation(raw_decode(data), orientation)
    decoded = read_image(data)
    np.testing.assert_array_equal(as_hwc(decoded), expected)
    if orientation == 1:
        assert decoded.notes == ()
    else:
        assert decoded.notes == (f"EXIF orientation {orientation} applied",)


def test_reference_orientation_matches_numpy_views() -> None:
    """Guard the reference itself against a typo in its table."""
    a = pattern(3, 5)
    views = {1: a, 2: a[:, ::-1], 3: a[::-1, ::-1], 4: a[::-1], 5: a.transpose(1, 0, 2),
             6: np.rot90(a, -1), 7: np.rot90(a, 2).transpose(1, 0, 2), 8: np.rot90(a, 1)}
    for orientation, view in views.items():
        np.testing.assert_array_equal(reference_orientation(a, orientation), view)


@pytest.mark.parametrize(
    "exif",
    [
        b"Exif\x00\x00garbage!!",  # no TIFF header: Pillow parses nothing
        b"Exif\x00\x00XX*\x00\x08\x00\x00\x00",  # unknown byte order
        b"Exif\x00\x00II*\x00\xff\xff\xff\x7f",  # IFD offset far past the end
        b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00\x05\x01\x12",  # truncated IFD
        # orientation stored as the string "abc" instead of a number
        b"Exif\x00\x00II*\x00\x08\x00\x00\x00\x01\x00\x12\x01\x02\x00\x04\x00\x00\x00abc\x00\x00\x00\x00\x00",
    ],
)
def test_broken_exif_decodes_without_rotation(exif: bytes) -> None:
    array = pattern(12, 20)
    data = jpeg_with_exif(array, exif)
    decoded = read_image(data)
    np.testing.assert_array_equal(as_hwc(decoded), raw_decode(data))
    assert any("EXIF" in note for note in decoded.notes), decoded.notes


def test_exif_parser_crash_decodes_without_rotation(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_getexif(self: Image.Image) -> Image.Exif:
        raise SyntaxError("broken EXIF")

    data = jpeg_with_exif(pattern(12, 20), orientation_exif(6))
    monkeypatch.setattr(Image.Image, "getexif", broken_getexif)
    decoded = read_image(data)
    assert decoded.rgb.shape == (3, 12, 20)  # not rotated
    assert decoded.notes == ("EXIF data is unreadable: orientation not applied",)


def test_invalid_orientation_value_is_ignored_with_note() -> None:
    data = jpeg_with_exif(pattern(12, 20), orientation_exif(9))
    decoded = read_image(data)
    assert decoded.rgb.shape == (3, 12, 20)
    assert any("not valid" in note for note in decoded.notes)


def test_png_rgba_alpha_kept_exactly() -> None:
    array = pattern(10, 14, channels=4)
    decoded = read_image(encode(Image.fromarray(array, "RGBA"), "PNG"))
    np.testing.assert_array_equal(as_hwc(decoded), array[:, :, :3])
    assert decoded.alpha is not None and decoded.alpha.shape == (1, 10, 14)
    np.testing.assert_array_equal(decoded.alpha[0].numpy(), array[:, :, 3])


def test_fully_opaque_alpha_is_dropped() -> None:
    array = pattern(6, 6, channels=4)
    array[:, :, 3] = 255
    decoded = read_image(encode(Image.fromarray(array, "RGBA"), "PNG"))
    assert decoded.alpha is None
    np.testing.assert_array_equal(as_hwc(decoded), array[:, :, :3])


def test_la_image() -> None:
    array = pattern(6, 9, channels=2)
    decoded = read_image(encode(Image.fromarray(array, "LA"), "PNG"))
    for channel in range(3):
        np.testing.assert_array_equal(decoded.rgb[channel].numpy(), array[:, :, 0])
    np.testing.assert_array_equal(decoded.alpha[0].numpy(), array[:, :, 1])


def test_greyscale_l() -> None:
    grey = pattern(7, 5, channels=1)[:, :, 0]
    decoded = read_image(encode(Image.fromarray(grey, "L"), "PNG"))
    assert decoded.alpha is None
    for channel in range(3):
        np.testing.assert_array_equal(decoded.rgb[channel].numpy(), grey)


def test_one_bit() -> None:
    bits = pattern(9, 11, channels=1)[:, :, 0] > 127
    decoded = read_image(encode(Image.fromarray(bits), "PNG"))
    assert set(np.unique(decoded.rgb.numpy())) <= {0, 255}
    np.testing.assert_array_equal(decoded.rgb[0].numpy(), np.where(bits, 255, 0))


def test_palette_with_transparency() -> None:
    image = Image.new("P", (3, 2))
    image.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255])
    image.putdata([0, 1, 2, 2, 1, 0])
    data = encode(image, "PNG", transparency=1)
    decoded = read_image(data)
    expected_rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255]],
                             [[0, 0, 255], [0, 255, 0], [255, 0, 0]]], dtype=np.uint8)
    np.testing.assert_array_equal(as_hwc(decoded), expected_rgb)
    np.testing.assert_array_equal(decoded.alpha[0].numpy(), [[255, 0, 255], [255, 0, 255]])


def test_palette_without_transparency() -> None:
    image = Image.fromarray(pattern(5, 5)).quantize(colors=8)
    decoded = read_image(encode(image, "PNG"))
    assert decoded.alpha is None
    np.testing.assert_array_equal(as_hwc(decoded), np.array(image.convert("RGB")))


def test_16_bit_greyscale_is_scaled_not_clipped() -> None:
    values = np.array([[0, 257, 257 * 7, 257 * 200, 65535, 128, 129, 65534]], dtype=np.uint16)
    data = encode(Image.fromarray(values), "PNG")
    with Image.open(io.BytesIO(data)) as check:
        assert check.mode.startswith("I")  # really a 16-bit image
    decoded = read_image(data)
    np.testing.assert_array_equal(decoded.rgb[0].numpy(), [[0, 1, 7, 200, 255, 0, 1, 255]])
    assert "16-bit image reduced to 8 bits" in decoded.notes


def test_16_bit_rgb_png_uses_high_byte() -> None:
    samples = np.array([[[65535, 257 * 10, 0], [300, 65280, 128]]], dtype=">u2")
    raw = b"".join(b"\x00" + row.tobytes() for row in samples)  # filter type 0 per row
    ihdr = struct.pack(">IIBBBBB", 2, 1, 16, 2, 0, 0, 0)
    png = (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr)
           + png_chunk(b"IDAT", zlib.compress(raw)) + png_chunk(b"IEND", b""))
    decoded = read_image(png)
    np.testing.assert_array_equal(as_hwc(decoded), samples.astype(np.uint16) >> 8)
    assert "16-bit image reduced to 8 bits" in decoded.notes


def test_cmyk_jpeg_converted_to_rgb() -> None:
    data = encode(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG", quality=95)
    decoded = read_image(data)
    assert decoded.rgb.shape == (3, 16, 16)
    red = decoded.rgb[:, 8, 8].tolist()
    assert red[0] > 240 and red[1] < 15 and red[2] < 15, red
    assert "CMYK converted to RGB" in decoded.notes


def test_webp_lossless_with_alpha() -> None:
    array = pattern(10, 12, channels=4)
    decoded = read_image(encode(Image.fromarray(array, "RGBA"), "WEBP", lossless=True, exact=True))
    assert decoded.format == "WEBP"
    np.testing.assert_array_equal(as_hwc(decoded), array[:, :, :3])
    np.testing.assert_array_equal(decoded.alpha[0].numpy(), array[:, :, 3])


def test_webp_lossy_without_alpha() -> None:
    decoded = read_image(encode(Image.fromarray(pattern(16, 24)), "WEBP", quality=80))
    assert decoded.rgb.shape == (3, 16, 24) and decoded.alpha is None


@pytest.mark.parametrize("format", ["BMP", "TIFF"])
def test_lossless_formats_exact(format: str) -> None:
    array = pattern(9, 13)
    decoded = read_image(encode(Image.fromarray(array), format))
    assert decoded.format == format
    np.testing.assert_array_equal(as_hwc(decoded), array)


@pytest.mark.parametrize("format", ["GIF", "WEBP"])
def test_animated_image_uses_first_frame(format: str) -> None:
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    frames = [Image.new("RGB", (8, 6), colour) for colour in colours]
    options = {"lossless": True} if format == "WEBP" else {}
    data = encode(frames[0], format, save_all=True, append_images=frames[1:], **options)
    decoded = read_image(data)
    assert decoded.rgb.shape == (3, 6, 8)
    assert decoded.rgb[:, 3, 4].tolist() == [255, 0, 0]
    assert "animated image: first frame of 3 used" in decoded.notes


def test_decode_pil_in_memory_image() -> None:
    array = pattern(4, 5)
    decoded = decode_pil(Image.fromarray(array))
    assert decoded.name == "<PIL image>"
    np.testing.assert_array_equal(as_hwc(decoded), array)


def test_decoded_image_checks_layout() -> None:
    with pytest.raises(ValueError):
        DecodedImage(rgb=torch.zeros(4, 2, 2, dtype=torch.uint8), alpha=None, name="x", format="array")
    with pytest.raises(ValueError):
        DecodedImage(rgb=torch.zeros(3, 2, 2), alpha=None, name="x", format="array")


def test_truncated_images_stay_errors() -> None:
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


# ----------------------------------------------------------------------------- errors


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.jpg"
    with pytest.raises(InvalidImageError) as excinfo:
        read_image(path)
    assert_error(excinfo, str(path), "does not exist")


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(InvalidImageError) as excinfo:
        read_image(tmp_path)
    assert_error(excinfo, str(tmp_path), "directory")


def test_fifo_is_not_a_regular_file(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    with pytest.raises(InvalidImageError) as excinfo:
        read_image(fifo)  # must not block waiting for a writer
    assert_error(excinfo, str(fifo), "not a regular file")


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(InvalidImageError) as excinfo:
        read_image(path)
    assert_error(excinfo, str(path), "empty")
    with pytest.raises(InvalidImageError) as excinfo:
        read_image(b"", name="upload")
    assert_error(excinfo, "upload", "empty")


def test_text_file_with_image_extension(tmp_path: Path) -> None:
    path = tmp_path / "notes.jpg"
    path.write_text("this is not a picture\n" * 10)
    with pytest.raises(InvalidImageError) as excinfo:
        read_image(path)
    assert_error(excinfo, str(path), "not an image")


def _truncations(data: bytes) -> list[bytes]:
    return [data[:cut] for cut in (4, 40, 200, len(data) // 2, len(data) - 100)]


@pytest.mark.parametrize("format", ["JPEG", "PNG"])
def test_truncated_files(format: str) -> None:
    data = encode(Image.fromarray(pattern(64, 64, seed=1)), format)
    for cut in _truncations(data):
        with pytest.raises(InvalidImageError) as excinfo:
            read_image(cut, name="cut")
        message = str(excinfo.value)
        assert message.startswith("cut: ")
        assert "not an image" in message or "truncated" in message, message


def test_a_truncated_real_jpeg_says_how_much_of_the_file_there_is(shared_images: Path, tmp_path: Path) -> None:
    """A photo cut short in the middle of its image data: the message says it is truncated and how many bytes the
    file has, not Pillow's "(N bytes not processed)", which counts its decoder's leftover buffer."""
    whole = (shared_images / "wb_liuyifei4.jpg").read_bytes()
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(whole[:3000])
    for source in (cut, cut.read_bytes()):
        with pytest.raises(InvalidImageError) as excinfo:
            read_image(source, name=str(cut))
        assert_error(excinfo, str(cut), "truncated image: the file ends after 3,000 bytes")
        assert "not processed" not in str(excinfo.value)
    # Read through an already open Pillow image, the byte count is not known: still called truncated.
    with Image.open(cut) as image, pytest.raises(InvalidImageError) as excinfo:
        imageio.decode_pil(image, name="cut")
    assert_error(excinfo, "cut", "truncated image")


def test_corrupted_bytes_never_leak_pillow_errors() -> None:
    rng = np.random.default_rng(3)
    for format in ("PNG", "JPEG", "GIF", "WEBP", "TIFF", "BMP"):
        data = bytearray(encode(Image.fromarray(pattern(16, 16)), format))
        for _ in range(15):
            damaged = bytearray(data)
            for position in rng.integers(0, len(data), size=3):
                damaged[position] = int(rng.integers(0, 256))
            try:
                decoded = read_image(bytes(damaged), name="damaged")
            except InvalidImageError as error:
                assert str(error).startswith("damaged: ")
            else:
                assert decoded.rgb.dtype == torch.uint8


def test_too_many_pixels_from_header_is_fast(small_png: bytes) -> None:
    bomb = with_png_size(small_png, 100_000, 100_000)
    start = time.perf_counter()
    with pytest.raises(InvalidImageError) as excinfo:
        read_image(bomb, name="bomb.png")
    assert time.perf_counter() - start < 0.5
    assert_error(excinfo, "bomb.png", "pixel limit", f"{DEFAULT_MAX_PIXELS:,}")


@pytest.mark.parametrize("size", [(9_000, 8_000), (10_000, 10_000)])
def test_pixel_limit_between_ours_and_pillows(small_png: bytes, size: tuple[int, int]) -> None:
    """72 Mpx is over our limit only; 100 Mpx also triggers Pillow's bomb warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no DecompressionBombWarning may leak
        with pytest.raises(InvalidImageError) as excinfo:
            read_image(with_png_size(small_png, *size), name="big")
    assert_error(excinfo, "big", "pixel limit", f"{size[0]}x{size[1]}")


def test_custom_pixel_limit(small_png: bytes) -> None:
    with pytest.raises(InvalidImageError) as excinfo:
        read_image(small_png, name="tiny", limits=ImageLimits(max_pixels=63))
    assert_error(excinfo, "tiny", "8x8", "pixel limit of 63")
    assert read_image(small_png, limits=ImageLimits(max_pixels=64)).rgb.shape == (3, 8, 8)


def test_zero_size_image(small_png: bytes) -> None:
    with pytest.raises(InvalidImageError) as excinfo:
        read_image(with_png_size(small_png, 0, 8), name="zero")
    assert str(excinfo.value).startswith("zero: ")
    with pytest.raises(InvalidImageError) as excinfo:
        decode_pil(Image.new("RGB", (0, 5)), name="zero")
    assert_error(excinfo, "zero", "zero size")


def test_file_too_large(tmp_path: Path, small_png: bytes) -> None:
    path = tmp_path / "big.png"
    path.write_bytes(small_png)
    limits = ImageLimits(max_file_bytes=len(small_png) - 1)
    with pytest.raises(InvalidImageError) as excinfo:
        read_image(path, limits=limits)
    assert_error(excinfo, str(path), "larger than the limit")
    with pytest.raises(InvalidImageError):
        read_image(small_png, limits=limits)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read files whatever their mode")
def test_unreadable_file(tmp_path: Path, small_png: bytes) -> None:
    path = tmp_path / "secret.png"
    path.write_bytes(small_png)
    path.chmod(0)
    try:
        with pytest.raises(InvalidImageError) as excinfo:
            read_image(path)
        assert_error(excinfo, str(path), "permission denied")
    finally:
        path.chmod(0o644)


def test_bad_limits_and_source_type() -> None:
    with pytest.raises(ConfigError):
        ImageLimits(max_pixels=0)
    with pytest.raises(TypeError):
        read_image(123)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- encoding


def tensors(height: int = 10, width: int = 14) -> tuple[torch.Tensor, torch.Tensor]:
    array = pattern(height, width, channels=4, seed=5)
    rgba = torch.from_numpy(array).permute(2, 0, 1)
    return rgba[:3].contiguous(), rgba[3:].contiguous()


def test_png_with_alpha_roundtrips_exactly() -> None:
    rgb, alpha = tensors()
    decoded = read_image(encode_image(rgb, alpha, format="png"))
    assert torch.equal(decoded.rgb, rgb)
    assert torch.equal(decoded.alpha, alpha)


def test_png_without_alpha_and_non_contiguous_input() -> None:
    rgb, _ = tensors()
    transposed = rgb.transpose(1, 2)  # a non-contiguous (3, W, H) view
    decoded = read_image(encode_image(transposed))
    assert decoded.alpha is None
    assert torch.equal(decoded.rgb, transposed.contiguous())


@pytest.mark.parametrize("format", ["jpg", "jpeg", "JPG"])
def test_jpeg_is_deterministic_and_drops_alpha(format: str) -> None:
    rgb, alpha = tensors(32, 48)
    first = encode_image(rgb, alpha, format=format, quality=85)
    assert first == encode_image(rgb, alpha, format=format, quality=85)
    assert first[:2] == b"\xff\xd8"
    decoded = read_image(first)
    assert decoded.format == "JPEG" and decoded.alpha is None
    assert decoded.rgb.shape == (3, 32, 48)
    assert encode_image(rgb, format="jpg", quality=10) != first  # quality is used


def test_webp_keeps_alpha_and_is_deterministic() -> None:
    rgb, alpha = tensors(16, 16)
    data = encode_image(rgb, alpha, format="webp", quality=90)
    assert data == encode_image(rgb, alpha, format="webp", quality=90)
    decoded = read_image(data)
    assert decoded.format == "WEBP"
    assert decoded.alpha is not None and decoded.alpha.shape == (1, 16, 16)


def test_encode_rejects_bad_arguments() -> None:
    rgb, alpha = tensors()
    with pytest.raises(ConfigError) as excinfo:
        encode_image(rgb, format="gif")
    assert isinstance(excinfo.value, ValueError) and "gif" in str(excinfo.value)
    with pytest.raises(ConfigError):
        encode_image(rgb, format="jpg", quality=0)
    with pytest.raises(ValueError):
        encode_image(rgb.float())
    with pytest.raises(ValueError):
        encode_image(rgb, alpha[:, :5])


def test_encode_rejects_sizes_the_format_cannot_store() -> None:
    rgb = torch.zeros(3, 1, 16_384, dtype=torch.uint8).expand(3, 1, 16_384)
    with pytest.raises(OutputError) as excinfo:
        encode_image(rgb, format="webp")
    assert "16383" in str(excinfo.value)


def test_extension_for() -> None:
    assert extension_for("png") == ".png"
    assert extension_for("jpg") == ".jpg"
    assert extension_for("jpeg") == ".jpg"
    assert extension_for("webp") == ".webp"
    assert OUTPUT_FORMATS == ("png", "jpg", "webp")
    with pytest.raises(ConfigError):
        extension_for("tiff")


# ----------------------------------------------------------------------------- writing


def leftovers(directory: Path) -> list[str]:
    return [name for name in os.listdir(directory) if name.endswith(".tmp")]


def test_write_atomic_writes_file(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "out.png"  # parents are created
    write_atomic(path, b"new content")
    assert path.read_bytes() == b"new content"
    assert path.stat().st_mode & 0o777 == 0o644
    assert leftovers(path.parent) == []
    write_atomic(str(path), b"replaced")
    assert path.read_bytes() == b"replaced"
    assert leftovers(path.parent) == []


def test_write_atomic_parent_is_a_file(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("I am a file")
    destination = blocker / "out.png"
    with pytest.raises(OutputError) as excinfo:
        write_atomic(destination, b"data")
    assert str(destination) in str(excinfo.value)
    assert "not a directory" in str(excinfo.value)
    assert blocker.read_text() == "I am a file"


def test_write_atomic_destination_is_a_directory(tmp_path: Path) -> None:
    destination = tmp_path / "taken"
    destination.mkdir()
    with pytest.raises(OutputError):
        write_atomic(destination, b"data")
    assert destination.is_dir()
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("failing", ["replace", "fsync"])
def test_write_atomic_failure_keeps_destination(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    destination = tmp_path / "out.png"
    destination.write_bytes(b"old")

    def disk_full(*args: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, failing, disk_full)
    with pytest.raises(OutputError) as excinfo:
        write_atomic(destination, b"new")
    message = str(excinfo.value)
    assert str(destination) in message and "No space left on device" in message
    monkeypatch.undo()
    assert destination.read_bytes() == b"old"
    assert leftovers(tmp_path) == []
    assert sorted(os.listdir(tmp_path)) == ["out.png"]


def test_write_atomic_interrupt_cleans_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(tmp_path / "out.png", b"data")
    monkeypatch.undo()
    assert os.listdir(tmp_path) == []


def test_files_written_together_appear_at_the_end_of_the_block_whole(tmp_path, monkeypatch) -> None:
    from cartoonkit import fileio

    calls = {"syncfs": 0, "fsync": 0}
    if fileio._HAVE_SYNCFS:
        real_syncfs = fileio._SYNCFS

        def counting_syncfs(fd):
            calls["syncfs"] += 1
            return real_syncfs(fd)
        monkeypatch.setattr(fileio, "_SYNCFS", counting_syncfs)
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.__setitem__("fsync", calls["fsync"] + 1), real_fsync(fd)))
    (tmp_path / "b.png").write_bytes(b"old")
    with fileio.durable_together() as group:
        for name in "abc":
            write_atomic(tmp_path / f"{name}.png", name.encode() * 3)
        assert not (tmp_path / "a.png").exists() and (tmp_path / "b.png").read_bytes() == b"old"  # not yet
        assert len(leftovers(tmp_path)) == 3
    assert group.failed == {}
    assert [(tmp_path / f"{n}.png").read_bytes() for n in "abc"] == [b"aaa", b"bbb", b"ccc"]
    assert (tmp_path / "a.png").stat().st_mode & 0o777 == 0o644 and leftovers(tmp_path) == []
    if fileio._HAVE_SYNCFS:  # one flush for the group, and only the directory fsynced (once)
        assert calls == {"syncfs": 1, "fsync": 1}
    else:
        assert calls["fsync"] == 4


def test_a_group_syncs_the_folder_of_a_bare_relative_name(tmp_path, monkeypatch) -> None:
    from cartoonkit import fileio

    synced = []
    monkeypatch.setattr(fileio, "_fsync_directory", synced.append)
    monkeypatch.chdir(tmp_path)
    with fileio.durable_together() as group:
        write_atomic("a.png", b"a")
    assert group.failed == {} and (tmp_path / "a.png").read_bytes() == b"a"
    assert synced == [str(tmp_path)]


def test_without_syncfs_each_file_is_fsynced_before_its_rename(tmp_path, monkeypatch) -> None:
    from cartoonkit import fileio

    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(fileio, "_HAVE_SYNCFS", False)
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    with fileio.durable_together() as group:
        write_atomic(tmp_path / "a.png", b"a")
        write_atomic(tmp_path / "b.png", b"b")
        assert len(synced) == 2  # each temporary file, before any rename
    assert group.failed == {} and (tmp_path / "b.png").read_bytes() == b"b"


def test_a_failed_flush_places_no_file_of_the_group(tmp_path, monkeypatch) -> None:
    from cartoonkit import fileio

    def disk_full(directories):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(fileio, "_HAVE_SYNCFS", True)
    monkeypatch.setattr(fileio, "_syncfs", disk_full)
    (tmp_path / "a.png").write_bytes(b"old")
    with fileio.durable_together() as group:
        write_atomic(tmp_path / "a.png", b"new")
        write_atomic(tmp_path / "b.png", b"new")
    assert sorted(group.failed) == [str(tmp_path / "a.png"), str(tmp_path / "b.png")]
    assert "No space left on device" in str(group.failed[str(tmp_path / "b.png")])
    assert group.failed[str(tmp_path / "b.png")].__cause__.errno == errno.ENOSPC  # a full disk stops a run
    assert sorted(os.listdir(tmp_path)) == ["a.png"] and (tmp_path / "a.png").read_bytes() == b"old"


def test_one_file_that_cannot_be_placed_leaves_the_others_in_place(tmp_path) -> None:
    from cartoonkit import fileio

    (tmp_path / "taken").mkdir()
    with fileio.durable_together() as group:
        write_atomic(tmp_path / "a.png", b"a")
        write_atomic(tmp_path / "taken", b"x")  # a directory is in the way: found at the rename
        write_atomic(tmp_path / "c.png", b"c")
    assert list(group.failed) == [str(tmp_path / "taken")]
    assert (tmp_path / "a.png").read_bytes() == b"a" and (tmp_path / "c.png").read_bytes() == b"c"
    assert (tmp_path / "taken").is_dir() and leftovers(tmp_path) == []


def test_groups_staged_in_several_threads_commit_with_one_flush(tmp_path, monkeypatch) -> None:
    """Group commit: two threads stage files (only temporary files until the commit), one commit places both
    groups with one flush, and each group learns only its own failures."""
    import threading

    from cartoonkit import fileio

    flushes = []
    monkeypatch.setattr(fileio, "_HAVE_SYNCFS", True)
    monkeypatch.setattr(fileio, "_syncfs", flushes.append)
    (tmp_path / "taken").mkdir()
    groups = {}

    def stage(name, files):
        with fileio.staged() as group:
            for file in files:
                write_atomic(tmp_path / file, file.encode())
        groups[name] = group

    threads = [threading.Thread(target=stage, args=("one", ["a.png", "taken"])),
               threading.Thread(target=stage, args=("two", ["b.png", "c.png"]))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(os.listdir(tmp_path)) == {"taken", *leftovers(tmp_path)} and len(leftovers(tmp_path)) == 4
    fileio.commit(groups["one"], groups["two"])
    assert len(flushes) == 1
    assert list(groups["one"].failed) == [str(tmp_path / "taken")] and groups["two"].failed == {}
    assert [(tmp_path / f).read_bytes() for f in ("a.png", "b.png", "c.png")] == [b"a.png", b"b.png", b"c.png"]
    assert leftovers(tmp_path) == []


def test_module_has_no_global_side_effects() -> None:
    assert Image.MAX_IMAGE_PIXELS == int(1024 * 1024 * 1024 // 4 // 3)
    assert imageio.DEFAULT_MAX_PIXELS == 64_000_000
    assert imageio.DEFAULT_MAX_FILE_BYTES == 256 * 1024 * 1024


@pytest.mark.parametrize("deflate", [False, True])
def test_tiled_tiff_decodes_exactly(deflate):
    from image_builders import tiled_tiff

    rgb, rgba = pattern(70, 100), pattern(40, 50, 4, seed=3)
    decoded = read_image(tiled_tiff(rgb, 32, 48, deflate), name="tiles.tif")
    assert np.array_equal(decoded.rgb.permute(1, 2, 0).numpy(), rgb) and decoded.alpha is None
    decoded = read_image(tiled_tiff(rgba, 16, 16, deflate), name="tiles.tif")
    assert np.array_equal(decoded.rgb.permute(1, 2, 0).numpy(), rgba[..., :3])
    assert np.array_equal(decoded.alpha[0].numpy(), rgba[..., 3])


def test_tiff_tiles_larger_than_the_pixel_limit_are_refused():
    from image_builders import tiff_tile_bomb, tiled_tiff

    with pytest.raises(InvalidImageError, match=r"^bomb.tif: TIFF tiles of 12288x12288 = 150,994,944 pixels each, "
                                                r"more than the pixel limit of 64,000,000$"):
        read_image(tiff_tile_bomb(64, 12288), name="bomb.tif")
    # a tile may be larger than the image (writers round up), as long as it fits the limit
    small = tiled_tiff(pattern(20, 20), 64, 64)
    assert read_image(small, limits=ImageLimits(max_pixels=4096)).rgb.shape == (3, 20, 20)
    with pytest.raises(InvalidImageError, match="TIFF tiles of 64x64"):
        read_image(small, limits=ImageLimits(max_pixels=4095))
