"""Fuzzing the decode-and-prepare path: ``imageio.read_image(bytes)`` then ``transforms.resize_long_side``.

Property: any byte string either decodes to a ``uint8`` ``(3, H, W)`` image (alpha ``(1, H, W)`` or ``None``)
within the pixel limit, which resizes to the planned size, or raises :class:`InvalidImageError` whose message
names the input. Nothing else may escape. The network is not run per example (too slow; its input is only
ever a resized ``uint8`` tensor, which this checks).

Bounded for CI: hypothesis with a fixed example budget (derandomized, and once more with a fixed seed and
no example database), and atheris (libFuzzer) for a fixed number of runs in a subprocess if it is installed.
Any input that ever broke the property belongs in ``REGRESSIONS``.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from image_builders import tiff_tile_bomb
from PIL import Image

from cartoonkit.errors import InvalidImageError
from cartoonkit.imageio import ImageLimits, read_image
from cartoonkit.transforms import output_size, resize_long_side

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, event, given, seed, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

LONG_SIDE = 256
# Small, so a mutated header that declares a large (but allowed) size cannot make one example slow; the
# limit is enforced the same way whatever its value (tests/test_imageio.py covers the default).
LIMITS = ImageLimits(max_pixels=1_000_000, max_file_bytes=1_000_000)
EXAMPLES = int(os.environ.get("CARTOONKIT_FUZZ_EXAMPLES", "1500"))  # raise it for a long local run

FORMATS = {  # format -> modes Pillow can write in it
    "PNG": ["RGB", "RGBA", "L", "LA", "P", "1", "I;16"],
    "JPEG": ["RGB", "L", "CMYK"],
    "WEBP": ["RGB", "RGBA"],
    "GIF": ["P", "L", "RGB"],
    "BMP": ["RGB", "L", "P", "1"],
    "TIFF": ["RGB", "RGBA", "L", "CMYK", "I;16", "1"],
}
MAGIC = [b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"RIFF\x00\x00\x00\x00WEBPVP8 ", b"RIFF\x00\x00\x00\x00WEBPVP8L",
         b"RIFF\x00\x00\x00\x00WEBPVP8X", b"GIF89a", b"GIF87a", b"BM", b"II*\x00", b"MM\x00*", b"P6\n",
         b"\x00\x00\x01\x00"]


def check(data: bytes) -> str:
    """The property, for one input; returns what happened (for hypothesis' statistics)."""
    try:
        decoded = read_image(data, name="fuzz", limits=LIMITS)
    except InvalidImageError as error:
        assert str(error).startswith("fuzz: "), str(error)
        message = str(error)
        for kind in ("not an image", "truncated or corrupt", "pixel limit", "zero size", "empty", "memory"):
            if kind in message:
                return f"error: {kind}"
        return "error: other"
    rgb, alpha = decoded.rgb, decoded.alpha
    assert rgb.dtype == torch.uint8 and rgb.ndim == 3 and rgb.shape[0] == 3 and rgb.is_contiguous()
    height, width = rgb.shape[1:]
    assert 0 < height * width <= LIMITS.max_pixels
    assert alpha is None or (alpha.dtype == torch.uint8 and tuple(alpha.shape) == (1, height, width))
    photo = resize_long_side(rgb, LONG_SIDE)
    assert photo.dtype == torch.uint8 and tuple(photo.shape[1:]) == output_size(height, width, LONG_SIDE)
    if alpha is not None:
        assert tuple(resize_long_side(alpha, LONG_SIDE).shape[1:]) == tuple(photo.shape[1:])
    return "decoded"


@st.composite
def images(draw) -> bytes:
    """A valid small image in any readable format and mode (sizes and pixels drawn)."""
    fmt = draw(st.sampled_from(sorted(FORMATS)))
    mode = draw(st.sampled_from(FORMATS[fmt]))
    width, height = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if mode == "I;16":
        image = Image.fromarray(rng.integers(0, 65536, (height, width), dtype=np.uint16))
    elif mode in ("RGB", "RGBA", "CMYK", "LA"):
        image = Image.fromarray(rng.integers(0, 256, (height, width, len(mode)), dtype=np.uint8), mode)
    else:
        image = Image.fromarray(rng.integers(0, 256, (height, width), dtype=np.uint8), "L").convert(mode)
    options = {}
    if fmt == "JPEG":
        options = {"quality": draw(st.integers(1, 100)), "progressive": draw(st.booleans())}
    elif fmt == "WEBP":
        options = {"lossless": draw(st.booleans())}
    elif fmt == "PNG" and mode == "P" and draw(st.booleans()):
        options = {"transparency": 0}
    if fmt in ("GIF", "WEBP", "PNG") and mode in ("RGB", "P") and draw(st.booleans()):
        frames = [image.copy() for _ in range(draw(st.integers(1, 3)))]
        options.update(save_all=True, append_images=frames)
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


@st.composite
def damaged(draw, source) -> bytes:
    """``source`` with a few byte flips, truncations, insertions and deletions."""
    data = bytearray(draw(source))
    for _ in range(draw(st.integers(0, 4))):
        if not data:
            break
        op = draw(st.sampled_from(["flip", "flip", "truncate", "insert", "delete", "bigint"]))
        at = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[at] = draw(st.integers(0, 255))
        elif op == "truncate":
            del data[at:]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del data[at:at + draw(st.integers(1, 16))]
        else:  # a size or length field set to something huge
            data[at:at + 4] = draw(st.sampled_from([b"\xff\xff\xff\xff", b"\x7f\xff\xff\xff", b"\x00\x00\xff\xff",
                                                    b"\xff\xff\x00\x00", b"\x00\x00\x00\x00"]))
    return bytes(data)


INPUTS = st.one_of(
    st.binary(max_size=2048),                                                   # noise
    st.builds(lambda magic, rest: magic + rest, st.sampled_from(MAGIC), st.binary(max_size=512)),  # magic + noise
    images(),                                                                   # valid
    damaged(images()),                                                          # valid, then damaged
)

FUZZ_SETTINGS = dict(max_examples=EXAMPLES, deadline=None,
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                            HealthCheck.filter_too_much])


@settings(derandomize=True, **FUZZ_SETTINGS)
@given(INPUTS)
def test_decode_and_prepare_never_leaks_an_exception(data: bytes) -> None:
    event(check(data))


@seed(20261125)
@settings(database=None, **FUZZ_SETTINGS)
@given(damaged(images()))
def test_damaged_images_with_a_fixed_seed(data: bytes) -> None:
    event(check(data))


# Inputs that once broke the property or are worth keeping as explicit cases (a crashing input a fuzzer finds
# goes here, with a note). None of the runs recorded in docs/robustness.md found a crash; these are the
# hand-made edge cases the fuzzers circle around.
REGRESSIONS = {
    "png IHDR only, no IDAT": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10\x00\x00\x00\x10\x08\x02\x00\x00"
                              b"\x00\x90\x91h6\x00\x00\x00\x00IEND\xaeB`\x82",
    "png zero width": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x00\x00\x00\x00\x10\x08\x02\x00\x00\x00"
                      b"\x00\x00\x00\x00",
    "jpeg SOI only": b"\xff\xd8",
    "jpeg SOI + EOI": b"\xff\xd8\xff\xd9",
    "gif header only": b"GIF89a\x10\x00\x10\x00\x00\x00\x00;",
    "bmp header, huge height": b"BM" + (54).to_bytes(4, "little") + b"\x00" * 4 + (54).to_bytes(4, "little")
                               + (40).to_bytes(4, "little") + (4).to_bytes(4, "little")
                               + (0x7FFFFFFF).to_bytes(4, "little") + b"\x01\x00\x18\x00" + b"\x00" * 24,
    "bmp negative height": b"BM" + (54).to_bytes(4, "little") + b"\x00" * 4 + (54).to_bytes(4, "little")
                           + (40).to_bytes(4, "little") + (4).to_bytes(4, "little")
                           + (-(2**31)).to_bytes(4, "little", signed=True) + b"\x01\x00\x18\x00" + b"\x00" * 24,
    "tiff header only": b"II*\x00\x08\x00\x00\x00\x00\x00",
    "webp riff without chunks": b"RIFF\x04\x00\x00\x00WEBP",
    "ico empty directory": b"\x00\x00\x01\x00\x00\x00",
    # 178 bytes, 64x64 pixels, one 12288x12288 RGBA16 tile: libtiff allocated 1.2 GB for it (the fuzzer's OOM)
    "tiff tile bomb": tiff_tile_bomb(64, 12288),
}


@pytest.mark.parametrize("data", list(REGRESSIONS.values()), ids=list(REGRESSIONS))
def test_regressions(data: bytes) -> None:
    check(data)


def test_tiff_tile_bomb_is_refused_by_the_pixel_limit():
    assert check(REGRESSIONS["tiff tile bomb"]) == "error: pixel limit"


# --------------------------------------------------------------------------- atheris (libFuzzer), optional

ATHERIS_RUNS = int(os.environ.get("CARTOONKIT_FUZZ_RUNS", "30000"))
ATHERIS_SECONDS = max(25, ATHERIS_RUNS // 500)  # a cap, so a slow machine ends early rather than hangs
HARNESS = textwrap.dedent("""
    import sys

    import atheris

    with atheris.instrument_imports():
        import PIL.Image  # noqa: F401  (instrument Pillow's Python parsers: the format plugins)
        from PIL import BmpImagePlugin, GifImagePlugin, JpegImagePlugin, PngImagePlugin, TiffImagePlugin  # noqa
        from PIL import WebPImagePlugin  # noqa: F401

    sys.path.insert(0, sys.argv.pop(1))
    from test_fuzz import check

    atheris.Setup(sys.argv, lambda data: check(data) and None)
    atheris.Fuzz()
""")


def seed_corpus(folder: Path) -> None:
    rng = np.random.default_rng(0)
    for fmt, modes in FORMATS.items():
        for mode in modes[:2]:
            array = rng.integers(0, 256, (9, 13, 3), dtype=np.uint8)
            image = Image.fromarray(array).convert(mode if mode != "I;16" else "L")
            image.save(folder / f"{fmt}_{mode.replace(';', '')}.{fmt.lower()}", fmt)


def test_atheris_bounded_run(tmp_path):
    pytest.importorskip("atheris")
    corpus, artifacts = tmp_path / "corpus", tmp_path / "crashes"
    corpus.mkdir()
    artifacts.mkdir()
    seed_corpus(corpus)
    harness = tmp_path / "harness.py"
    harness.write_text(HARNESS)
    start = time.monotonic()
    # Through a shell that forks (the trailing ``exit``): libFuzzer's RSS limit reads ``ru_maxrss``, which Linux
    # carries from parent to child across fork and exec, so a direct child of a test session that once peaked
    # at 2 GB would start "out of memory". The shell's child inherits only the shell's few MB.
    result = subprocess.run(
        ["/bin/sh", "-c", '"$0" "$@"; exit $?',
         sys.executable, str(harness), str(Path(__file__).parent), f"-runs={ATHERIS_RUNS}", "-seed=1",
         f"-max_total_time={ATHERIS_SECONDS}", "-rss_limit_mb=2048", "-timeout=10", "-max_len=4096",
         f"-artifact_prefix={artifacts}{os.sep}", str(corpus)],
        capture_output=True, text=True, timeout=ATHERIS_SECONDS + 90, cwd=tmp_path)
    seconds = time.monotonic() - start
    crashes = {p.name: p.read_bytes() for p in artifacts.iterdir()}
    assert result.returncode == 0 and not crashes, (
        f"atheris found inputs that break the property; add them to REGRESSIONS: {crashes!r}\n{result.stderr[-4000:]}")
    print(f"\natheris: {ATHERIS_RUNS} runs requested, {seconds:.1f} s; "
          + next((line for line in result.stderr.splitlines() if line.startswith("Done")), "no summary"))
