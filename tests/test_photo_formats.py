"""Photos as people have them: HEIC and AVIF (orientation, alpha, Display P3), JPEG with Adobe RGB, MPO, JPEG XL,
the formats refused by name, colour profiles converted to sRGB as littlecms converts them, sRGB-tagged outputs.

Every file is written here by the libraries themselves (pillow-heif, Pillow's AVIF and MPO writers,
pillow-jxl-plugin); the colour references are littlecms's own conversions, and a published matrix."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
import torch
from image_builders import encode, mpo, pattern
from PIL import Image, ImageCms

from cartoonkit import colour
from cartoonkit.errors import InvalidImageError
from cartoonkit.imageencode import encode_image
from cartoonkit.imageio import ImageLimits, jxl_size, read_image

P3 = colour.matrix_profile("Display P3 (test)", colour.DISPLAY_P3_PRIMARIES)
ADOBE = colour.matrix_profile("Adobe RGB (1998) (test)", colour.ADOBE_RGB_PRIMARIES, gamma=colour.ADOBE_RGB_GAMMA)
LCMS_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def blocks(height: int = 32, width: int = 48) -> np.ndarray:
    """Four flat quadrants of different colours: any rotation or flip shows, and lossy codecs keep them."""
    image = np.zeros((height, width, 3), np.uint8)
    h, w = height // 2, width // 2
    image[:h, :w], image[:h, w:] = (220, 40, 40), (40, 200, 60)
    image[h:, :w], image[h:, w:] = (40, 60, 210), (230, 220, 50)
    return image


def hwc(tensor: torch.Tensor) -> np.ndarray:
    return tensor.permute(1, 2, 0).numpy().astype(int)


def lcms_to_srgb(array: np.ndarray, profile: bytes) -> np.ndarray:
    """The reference: littlecms's own conversion of the stored pixels to its built-in sRGB."""
    source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
    return np.asarray(ImageCms.profileToProfile(Image.fromarray(array), source, LCMS_SRGB,
                                                renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC)).astype(int)


def stored_pixels(data: bytes) -> np.ndarray:
    """What the file holds, unmanaged and not rotated (the libraries' plain decode)."""
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


def exif(orientation: int) -> bytes:
    tags = Image.Exif()
    tags[0x0112] = orientation
    return tags.tobytes()


LOSSY = {"HEIF": {"quality": 95}, "AVIF": {"quality": 95, "subsampling": "4:4:4"}}


# --------------------------------------------------------------------------- HEIC and AVIF


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF"])
@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_rotated_heic_and_avif_are_upright(fmt, orientation):
    photo = blocks()
    data = encode(Image.fromarray(photo), fmt, exif=exif(orientation), **LOSSY[fmt])
    decoded = read_image(data, name=f"photo.{fmt.lower()}")
    expected = {3: np.rot90(photo, 2), 6: np.rot90(photo, -1), 8: np.rot90(photo, 1)}[orientation]
    assert decoded.format == fmt and decoded.rgb.shape == (3, *expected.shape[:2])
    assert np.abs(hwc(decoded.rgb) - expected.astype(int)).mean() < 4  # lossy: each quadrant where it belongs
    assert any(f"orientation {orientation} applied" in note for note in decoded.notes), decoded.notes


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF"])
def test_heic_and_avif_keep_alpha(fmt):
    rgba = np.dstack([blocks(), np.tile(np.linspace(0, 255, 48).astype(np.uint8), (32, 1))])
    decoded = read_image(encode(Image.fromarray(rgba, "RGBA"), fmt, **LOSSY[fmt]))
    assert decoded.alpha is not None and decoded.alpha.shape == (1, 32, 48)
    assert np.abs(decoded.alpha[0].numpy().astype(int) - rgba[..., 3]).max() <= 3


def p3_patches() -> np.ndarray:
    """Pure Display P3 red beside a neutral grey, and an in-gamut orange (8 x 8 each)."""
    return np.concatenate([np.full((8, 8, 3), colour, np.uint8) for colour in
                           ((255, 0, 0), (128, 128, 128), (200, 120, 60))], axis=1)


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF", "PNG"])
def test_display_p3_converted_as_littlecms_converts_it(fmt):
    options = {"HEIF": {"quality": -1}, "AVIF": LOSSY["AVIF"], "PNG": {}}[fmt]
    data = encode(Image.fromarray(p3_patches()), fmt, icc_profile=P3, **options)
    decoded = read_image(data, name="p3")
    reference = lcms_to_srgb(stored_pixels(data), P3)
    assert np.abs(hwc(decoded.rgb) - reference).max() <= 1
    red, grey = hwc(decoded.rgb)[4, 4], hwc(decoded.rgb)[4, 12]
    assert red.tolist() == [255, 0, 0]  # P3 red is outside sRGB: clipped to sRGB red (relative colorimetric)
    # P3 and sRGB share their white and their curve: a grey comes out as the grey it was stored as
    assert np.abs(grey - stored_pixels(data)[4, 12].astype(int)).max() <= 1
    if fmt == "PNG":
        assert grey.tolist() == [128, 128, 128]
    assert any("embedded profile (Display P3 (test)) to sRGB, relative colorimetric" in n for n in decoded.notes)
    if fmt != "PNG":  # the unmanaged reading differs from the managed one: the conversion did something
        assert np.abs(hwc(decoded.rgb) - stored_pixels(data).astype(int)).max() >= 10


def test_p3_profile_agrees_with_the_published_matrix():
    """The profile the tests build is Display P3: littlecms through it gives the published P3 -> sRGB matrix
    (linear light, D65), for in-gamut colours."""
    published = np.array([[1.2249401, -0.2249404, 0.0], [-0.0420569, 1.0420571, 0.0],
                          [-0.0196376, -0.0786361, 1.0982735]])
    rng = np.random.default_rng(5)
    p3 = rng.integers(60, 200, size=(1, 200, 3), dtype=np.uint8)

    def decode(v):
        v = v / 255
        return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)

    def encode_srgb(v):
        return 255 * np.where(v <= 0.0031308, 12.92 * v, 1.055 * np.clip(v, 0, None) ** (1 / 2.4) - 0.055)

    expected = encode_srgb(decode(p3.astype(float)) @ published.T)
    inside = ((expected >= 0) & (expected <= 255)).all(axis=-1)
    assert inside.sum() > 100
    got = lcms_to_srgb(p3, P3)
    assert np.abs(got[inside] - expected[inside]).max() <= 1.0


def test_jpeg_with_adobe_rgb_profile():
    photo = pattern(16, 24, seed=4)
    data = encode(Image.fromarray(photo), "JPEG", quality=95, icc_profile=ADOBE)
    decoded = read_image(data, name="adobe.jpg")
    assert np.abs(hwc(decoded.rgb) - lcms_to_srgb(stored_pixels(data), ADOBE)).max() <= 1
    assert any("Adobe RGB (1998) (test)" in note for note in decoded.notes)


def test_alpha_untouched_by_the_conversion():
    rgba = pattern(12, 16, 4, seed=6)
    decoded = read_image(encode(Image.fromarray(rgba, "RGBA"), "PNG", icc_profile=P3))
    np.testing.assert_array_equal(decoded.alpha[0].numpy(), rgba[..., 3])
    assert np.abs(hwc(decoded.rgb) - lcms_to_srgb(rgba[..., :3].copy(), P3)).max() <= 1


@pytest.mark.parametrize("profile", [colour.SRGB_ICC, ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
                                     .tobytes()])
def test_srgb_profile_and_no_profile_leave_pixels_as_stored(profile):
    photo = pattern(20, 30, seed=7)
    for data in (encode(Image.fromarray(photo), "PNG", icc_profile=profile), encode(Image.fromarray(photo), "PNG")):
        decoded = read_image(data)
        np.testing.assert_array_equal(hwc(decoded.rgb), photo)
        assert not any("profile" in note for note in decoded.notes)


def test_damaged_profile_is_ignored_with_a_note():
    photo = pattern(8, 8)
    decoded = read_image(encode(Image.fromarray(photo), "PNG", icc_profile=b"not a profile at all" * 8))
    np.testing.assert_array_equal(hwc(decoded.rgb), photo)
    assert "embedded ICC profile is unreadable: colours taken as sRGB" in decoded.notes


# --------------------------------------------------------------------------- outputs are tagged sRGB


def srgb_identity(profile: bytes) -> int:
    """Largest difference, in levels, between littlecms's sRGB and ``profile`` over a colour grid."""
    levels = np.linspace(0, 255, 16).astype(np.uint8)
    grid = np.stack(np.meshgrid(levels, levels, levels), axis=-1).reshape(1, -1, 3)
    return int(np.abs(lcms_to_srgb(grid, profile) - grid.astype(int)).max())


@pytest.mark.parametrize("fmt", ["png", "jpg", "webp"])
def test_outputs_open_in_pillow_as_srgb(fmt):
    rgb = torch.from_numpy(pattern(16, 20)).permute(2, 0, 1).contiguous()
    data = encode_image(rgb, format=fmt, quality=90)
    assert data == encode_image(rgb, format=fmt, quality=90)  # still deterministic
    with Image.open(io.BytesIO(data)) as image:
        if fmt == "png":
            assert image.info["srgb"] == 0 and "icc_profile" not in image.info  # the sRGB chunk, perceptual
        else:
            profile = image.info["icc_profile"]
            assert ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(profile))).strip() == \
                "sRGB (cartoonkit)"
            assert srgb_identity(profile) <= 1
    if fmt == "png":
        np.testing.assert_array_equal(hwc(read_image(data).rgb), pattern(16, 20))  # read back unchanged


# --------------------------------------------------------------------------- MPO, JPEG XL, refused formats


def test_mpo_uses_its_first_picture():
    first, second = pattern(16, 24, seed=1), pattern(16, 24, seed=2)
    decoded = read_image(mpo([first, second], quality=95), name="stereo.mpo")
    assert decoded.format == "MPO" and "multi-picture JPEG: first frame of 2 used" in decoded.notes
    assert np.abs(hwc(decoded.rgb) - first.astype(int)).mean() < np.abs(hwc(decoded.rgb) - second.astype(int)).mean()


def need_jxl():
    return pytest.importorskip("pillow_jxl", reason="JPEG XL needs the jxl extra (pillow-jxl-plugin)")


def test_jpeg_xl_lossless():
    need_jxl()
    rgba = pattern(12, 20, 4, seed=8)
    decoded = read_image(encode(Image.fromarray(rgba, "RGBA"), "JXL", lossless=True), name="a.jxl")
    assert decoded.format == "JXL"
    np.testing.assert_array_equal(hwc(decoded.rgb), rgba[..., :3])
    np.testing.assert_array_equal(decoded.alpha[0].numpy(), rgba[..., 3])


@pytest.mark.parametrize("size", [(8, 8), (40, 24), (300, 200), (1000, 1), (1234, 567), (256, 144)])
def test_jpeg_xl_size_from_the_header(size):
    need_jxl()
    data = encode(Image.new("RGB", size), "JXL")
    with Image.open(io.BytesIO(data)) as image:
        assert jxl_size(data) == image.size == size


def test_jpeg_xl_over_the_limit_is_refused_before_its_decoder_runs(monkeypatch):
    plugin = need_jxl()
    from pillow_jxl import JpegXLImagePlugin

    data = encode(Image.new("RGB", (40, 24)), "JXL")
    monkeypatch.setattr(JpegXLImagePlugin.JXLImageFile, "_open", lambda self: pytest.fail("decoder ran"))
    with pytest.raises(InvalidImageError, match=r"^big.jxl: image is 40x24 = 960 pixels, more than the pixel "
                                                r"limit of 959$"):
        read_image(data, name="big.jxl", limits=ImageLimits(max_pixels=959))
    assert plugin is not None


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF"])
def test_heic_and_avif_limits_before_decoding(fmt, monkeypatch):
    data = encode(Image.fromarray(blocks()), fmt, quality=80)
    assert read_image(data, limits=ImageLimits(max_pixels=48 * 32)).rgb.shape == (3, 32, 48)  # inclusive
    with Image.open(io.BytesIO(data)) as image:
        monkeypatch.setattr(type(image), "load", lambda self: pytest.fail("decoded"))
    with pytest.raises(InvalidImageError, match=r"^p: image is 48x32 = 1,536 pixels, more than the pixel limit"):
        read_image(data, name="p", limits=ImageLimits(max_pixels=48 * 32 - 1))
    with pytest.raises(InvalidImageError, match=r"^p: file is .* bytes, larger than the limit of 100 bytes$"):
        read_image(data, name="p", limits=ImageLimits(max_file_bytes=100))


@pytest.mark.parametrize(("fmt", "words"), [("ICO", "icon (ICO)"), ("TGA", "Targa texture (TGA)"),
                                            ("PCX", "PCX image (PCX)"), ("QOI", "QOI image (QOI)")])
def test_other_pillow_formats_are_refused_by_name(fmt, words):
    data = encode(Image.fromarray(pattern(16, 16)), fmt)
    with pytest.raises(InvalidImageError, match=rf"^x\.png: {re.escape(words)}, not a photo format cartoonkit reads"):
        read_image(data, name="x.png")


@pytest.mark.parametrize("fmt", ["JPEG2000", "PPM"])
def test_other_photo_formats_read(fmt):
    photo = pattern(10, 14)
    options = {"irreversible": False} if fmt == "JPEG2000" else {}
    decoded = read_image(encode(Image.fromarray(photo), fmt, **options))
    assert decoded.format == fmt
    np.testing.assert_array_equal(hwc(decoded.rgb), photo)


def test_jpeg_xl_without_the_extra_names_it(monkeypatch):
    """Where pillow-jxl-plugin is not installed Pillow has no JXL plugin: the error names the extra."""
    need_jxl()
    from cartoonkit import imageio

    data = encode(Image.new("RGB", (16, 16)), "JXL")
    monkeypatch.setattr(imageio, "_OPEN_FORMATS", [f for f in imageio._OPEN_FORMATS if f != "JXL"])
    with pytest.raises(InvalidImageError, match=r"^a\.jxl: JPEG XL image: reading it needs pillow-jxl-plugin, "
                                                r"pip install 'cartoonkit\[jxl\]'$"):
        read_image(data, name="a.jxl")


def test_gpu_jpeg_path_leaves_profiles_to_the_cpu_and_tags_its_outputs():
    """nvJPEG knows no colour profiles: a JPEG with a wide-gamut profile goes to the CPU decoder; one tagged
    sRGB or untagged may take the GPU; nvJPEG's outputs get the same sRGB profile as the CPU encoder's."""
    from cartoonkit.gpu_codecs import plain_jpeg

    photo = Image.fromarray(pattern(16, 16))
    limits = ImageLimits()
    assert plain_jpeg(encode(photo, "JPEG"), "a", limits)
    assert plain_jpeg(encode(photo, "JPEG", icc_profile=colour.SRGB_ICC), "a", limits)
    assert not plain_jpeg(encode(photo, "JPEG", icc_profile=P3), "a", limits)
    assert not plain_jpeg(encode(photo, "JPEG", icc_profile=ADOBE), "a", limits)
    untagged = encode(photo, "JPEG", quality=90)  # stands in for nvJPEG's output: no profile
    tagged = colour.tag_jpeg(untagged)
    with Image.open(io.BytesIO(tagged)) as image:
        assert image.info["icc_profile"] == colour.SRGB_ICC
        np.testing.assert_array_equal(np.asarray(image), stored_pixels(untagged))
    rgb = torch.from_numpy(pattern(16, 16)).permute(2, 0, 1).contiguous()
    cpu = encode_image(rgb, format="jpg", quality=90)
    with Image.open(io.BytesIO(cpu)) as image:  # the CPU encoder puts the profile in the same place
        assert image.info["icc_profile"] == colour.SRGB_ICC
    assert cpu.index(b"ICC_PROFILE") == colour.tag_jpeg(encode(Image.fromarray(pattern(16, 16)), "JPEG")).index(
        b"ICC_PROFILE")


@pytest.mark.parametrize("fmt", ["png", "jpg"])
def test_the_srgb_tag_is_the_only_change_to_outputs(fmt):
    """Without its sRGB tag an output is byte for byte what the encoder wrote before outputs were tagged (the
    options of ``imageencode._save_options``): why the recorded output hashes (tests/output_hashes.py) still hold."""
    from output_hashes import without_srgb_tag

    array = pattern(24, 32, seed=9)
    rgb = torch.from_numpy(array).permute(2, 0, 1).contiguous()
    options = {"png": {"compress_level": 1, "optimize": False},
               "jpg": {"quality": 95, "optimize": False, "subsampling": "4:4:4"}}[fmt]
    before = encode(Image.fromarray(array), {"png": "PNG", "jpg": "JPEG"}[fmt], **options)
    tagged = encode_image(rgb, format=fmt, quality=95)
    assert tagged != before and without_srgb_tag(tagged) == before


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF", "JXL"])
def test_damaged_heic_avif_and_jxl_decode_or_fail_cleanly(fmt):
    """Byte flips, cuts and insertions in files of the new formats: a picture within the limit, or an
    InvalidImageError naming the file; libheif, libavif and libjxl never crash the process or leak their errors."""
    if fmt == "JXL":
        need_jxl()
    rng = np.random.default_rng(11)
    rgba = np.dstack([pattern(24, 40, seed=12), np.full((24, 40), 200, np.uint8)])
    base = encode(Image.fromarray(rgba, "RGBA"), fmt, quality=60)
    outcomes = {"decoded": 0, "refused": 0}
    for _ in range(150):
        data = bytearray(base)
        kind = rng.integers(0, 3)
        if kind == 0:
            for _ in range(rng.integers(1, 5)):
                data[rng.integers(0, len(data))] = rng.integers(0, 256)
        elif kind == 1:
            data = data[:rng.integers(1, len(data))]
        else:
            at = rng.integers(0, len(data))
            data[at:at] = rng.integers(0, 256, rng.integers(1, 9), dtype=np.uint8).tobytes()
        try:
            decoded = read_image(bytes(data), name="damaged", limits=ImageLimits(max_pixels=1_000_000))
        except InvalidImageError as exc:
            assert str(exc).startswith("damaged: "), exc
            outcomes["refused"] += 1
        else:
            assert decoded.rgb.dtype == torch.uint8 and decoded.rgb.shape[1] * decoded.rgb.shape[2] <= 1_000_000
            outcomes["decoded"] += 1
    assert outcomes["refused"] > 0


def nclx(primaries: int, transfer: int = 13) -> dict:
    return {"color_primaries": primaries, "transfer_characteristics": transfer, "matrix_coefficients": 6,
            "full_range_flag": 1}


def test_heic_with_coded_p3_colour_and_no_profile():
    """A HEIC that says Display P3 with nclx numbers (primaries 12, sRGB transfer) instead of an ICC profile is
    converted like one with the P3 profile; sRGB primaries are left alone; HDR is said not to be tone-mapped."""
    data = encode(Image.fromarray(p3_patches()), "HEIF", quality=-1, nclx_profile=nclx(12))
    with Image.open(io.BytesIO(data)) as image:
        assert not image.info.get("icc_profile") and image.info["nclx_profile"]["color_primaries"] == 12
    decoded = read_image(data)
    assert np.abs(hwc(decoded.rgb) - lcms_to_srgb(stored_pixels(data), P3)).max() <= 1
    assert hwc(decoded.rgb)[4, 4].tolist() == [255, 0, 0]
    assert any("HEIF nclx colour primaries 12" in note for note in decoded.notes)
    srgb = encode(Image.fromarray(p3_patches()), "HEIF", quality=-1, nclx_profile=nclx(1))
    np.testing.assert_array_equal(hwc(read_image(srgb).rgb), stored_pixels(srgb))
    hdr = encode(Image.fromarray(p3_patches()), "HEIF", quality=-1, nclx_profile=nclx(9, transfer=16))
    decoded = read_image(hdr)
    np.testing.assert_array_equal(hwc(decoded.rgb), stored_pixels(hdr))
    assert "HDR image (PQ transfer) not tone-mapped: colours taken as sRGB" in decoded.notes


def test_jpeg_xl_container_size_and_a_missing_header():
    """The size is read from a container's codestream box too; a JXL signature without a readable size header
    is refused before the decoder (which would decode without a limit) runs."""
    need_jxl()
    codestream = encode(Image.new("RGB", (300, 200)), "JXL")
    assert codestream.startswith(b"\xff\x0a")
    container = b"\x00\x00\x00\x0cJXL \r\n\x87\n" + b"\x00\x00\x00\x14ftypjxl \x00\x00\x00\x00jxl " + \
        (8 + len(codestream)).to_bytes(4, "big") + b"jxlc" + codestream
    assert jxl_size(container) == (300, 200)
    assert read_image(container, name="c.jxl").rgb.shape == (3, 200, 300)
    with pytest.raises(InvalidImageError, match=r"^c\.jxl: JPEG XL file whose size header cannot be found"):
        read_image(container[:40], name="c.jxl")


@pytest.mark.parametrize(("fmt", "words"), [("HEIF", "HEIC/HEIF image: reading it needs pillow-heif"),
                                            ("AVIF", "AVIF image: this Pillow was built without AVIF")])
def test_heic_and_avif_without_their_decoder_say_what_is_missing(monkeypatch, fmt, words):
    """Where pillow-heif is missing (an environment older than the dependency) or Pillow lacks libavif."""
    from cartoonkit import imageio

    data = encode(Image.fromarray(blocks()), fmt, quality=80)
    monkeypatch.setattr(imageio, "_OPEN_FORMATS", [f for f in imageio._OPEN_FORMATS if f != fmt])
    with pytest.raises(InvalidImageError, match=rf"^p: {re.escape(words)}"):
        read_image(data, name="p")
