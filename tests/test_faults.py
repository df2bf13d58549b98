"""Faults from outside the input files, end to end: out of (GPU) memory during a batch, an output folder that
cannot be written to, and the pixel / file-size limits at their exact edges, refused before any decoding.

Everything runs on the CPU. Out-of-memory is simulated by a network forward that raises
``torch.cuda.OutOfMemoryError`` above a batch size. "Not writable" is real: as root, whom permission
bits do not stop, the command runs in a child process without ``CAP_DAC_OVERRIDE`` (``setpriv``).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import threading
import tracemalloc
from pathlib import Path

import pytest
import torch
from cli_helpers import image_files, run_cli, temporary_files
from image_builders import encode, gif_bomb, jpeg_bomb, pattern, png_bomb, tiff_tile_bomb, webp_bomb
from PIL import Image

from cartoonkit import CartoonConfig
from cartoonkit.errors import InvalidImageError
from cartoonkit.folder import REPORT_FILE, run_folder
from cartoonkit.folder import stream as stream_module
from cartoonkit.imageio import DEFAULT_MAX_PIXELS, ImageLimits, read_image
from cartoonkit.network import CartoonNetwork

SMALL = ["--resolution", "256"]
CONFIG = CartoonConfig(resolution=256)
# At resolution 256 these four share one bucket shape, so up to eight copies make one batch.
PORTRAITS = ["wb_mountain4.jpg", "wb_food16.jpg", "wb_london1.jpg", "wb_party5.jpg"]
TIMEOUT_S = 300  # a hang fails the test instead of blocking CI


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


# --------------------------------------------------------------------------- out of memory in a batch


@pytest.fixture
def eight(shared_images, tmp_path, models_dir) -> Path:
    """in/a and in/b, each with the four portraits: eight photos of one bucket shape."""
    root = tmp_path / "in"
    for folder in ("a", "b"):
        (root / folder).mkdir(parents=True)
        for name in PORTRAITS:
            shutil.copy(shared_images / name, root / folder / name)
    return root


@pytest.fixture
def reads_first(monkeypatch):
    """The engine starts only once the readers have queued every photo, as on a GPU, where reading runs ahead
    of the network; so with one reader thread the batches are the same in every run (not by timing)."""
    real_init, real_reader, real_loop = (stream_module.Stream.__init__, stream_module.Stream._reader,
                                         stream_module.Stream._engine_loop)

    def init(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        self.readers_finished = threading.Semaphore(0)

    def reader(self):
        try:
            real_reader(self)
        finally:
            self.readers_finished.release()

    def engine_loop(self):
        for _ in range(self.n_readers):
            assert self.readers_finished.acquire(timeout=TIMEOUT_S), "a reader never finished"
        real_loop(self)

    monkeypatch.setattr(stream_module.Stream, "__init__", init)
    monkeypatch.setattr(stream_module.Stream, "_reader", reader)
    monkeypatch.setattr(stream_module.Stream, "_engine_loop", engine_loop)


def memory_for(monkeypatch, images: int) -> list[int]:
    """The network raises CUDA's out-of-memory error for a batch of more than ``images`` photos; returns the
    batch sizes it was called with."""
    real_forward, sizes = CartoonNetwork.forward, []

    def forward(self, photo_bgr):
        sizes.append(photo_bgr.shape[0])
        if photo_bgr.shape[0] > images:
            raise torch.cuda.OutOfMemoryError(f"CUDA out of memory (simulated: room for {images} images)")
        return real_forward(self, photo_bgr)

    monkeypatch.setattr(CartoonNetwork, "forward", forward)
    return sizes


BATCH = ["-q", "batch", "--device", "cpu", "--batch-size", "8", "--io-threads", "1", *SMALL]


def test_out_of_memory_halves_the_batch_and_the_run_completes(capsys, caplog, monkeypatch, eight, tmp_path,
                                                               reads_first):
    normal = tmp_path / "normal"
    code, stdout, stderr = run_cli(capsys, *BATCH, eight, "-o", normal)
    assert code == 0, stderr
    assert json.loads((normal / REPORT_FILE).read_text())["batches"] == {"8": 1}  # really one batch of 8

    out = tmp_path / "out"
    sizes = memory_for(monkeypatch, 2)
    with caplog.at_level(logging.WARNING, logger="cartoonkit.engine"):
        code, stdout, stderr = run_cli(capsys, *BATCH, eight, "-o", out)

    assert code == 0, stderr
    assert sizes == [8, 4, 2, 2, 4, 2, 2]
    halvings = [r.getMessage() for r in caplog.records if r.name == "cartoonkit.engine"]
    assert len(halvings) == 3, halvings
    assert re.fullmatch(r"out of memory on a batch of 8 at \d+x\d+; retrying as 4 \+ 4", halvings[0])
    assert all(re.fullmatch(r"out of memory on a batch of 4 at \d+x\d+; retrying as 2 \+ 2", m) for m in halvings[1:])
    assert "8 done, 0 skipped, 0 failed" in stdout and error_lines(stderr) == []
    report = json.loads((out / REPORT_FILE).read_text())
    assert report["counts"] == {"found": 8, "done": 8, "skipped": 0, "failed": 0, "not_processed": 0}
    assert report["complete"] and report["batches"] == {"8": 1}
    assert temporary_files(out) == []
    # The same files as the run that had the memory: the halves hold the same photos, padded and cropped the same.
    expected, got = image_files(normal), image_files(out)
    assert set(got) == set(expected) == {f"{d}/{Path(n).stem}.png" for d in "ab" for n in PORTRAITS}
    assert got == expected  # byte for byte


def test_out_of_memory_even_for_one_photo_fails_each_file_clearly(capsys, monkeypatch, eight, tmp_path,
                                                                   reads_first):
    out = tmp_path / "out"
    sizes = memory_for(monkeypatch, 0)
    code, stdout, stderr = run_cli(capsys, *BATCH, eight, "-o", out)
    assert code == 1
    assert sizes[:4] == [8, 4, 2, 1] and sizes[4:] == [1] * 8  # halved down to one, then each photo alone
    assert "0 done, 0 skipped, 8 failed" in stdout and "Traceback" not in stderr
    report = json.loads((out / REPORT_FILE).read_text())
    assert report["complete"] and report["counts"]["failed"] == 8
    for entry in report["failed"]:
        assert re.fullmatch(r"out of memory on cpu at \d+x256; try a lower --resolution", entry["reason"]), entry
    assert image_files(out) == {} and temporary_files(out) == []


# --------------------------------------------------------------------------- output folder not writable


def _unprivileged_prefix() -> list[str] | None:
    """A command prefix under which permission bits apply: none needed for a normal user; for root, setpriv
    dropping CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH (root then obeys the owner bits, and still reads
    everything it owns: the virtual environment, the models, the test folders). ``None``: not possible here."""
    if not hasattr(os, "geteuid"):
        return None
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return None
    drop = "-dac_override,-dac_read_search"
    return [setpriv, f"--inh-caps={drop}", f"--bounding-set={drop}"]


@pytest.fixture(scope="module")
def unprivileged(tmp_path_factory) -> list[str]:
    prefix = _unprivileged_prefix()
    if prefix is None:
        pytest.skip("running as root without setpriv: permission bits cannot be made to apply")
    probe = tmp_path_factory.mktemp("probe")
    probe.chmod(0o555)
    try:
        result = subprocess.run([*prefix, sys.executable, "-c", f"open({str(probe / 'x')!r}, 'w')"],
                                capture_output=True, text=True, timeout=60)
    finally:
        probe.chmod(0o755)
    if result.returncode == 0 or "PermissionError" not in result.stderr:
        pytest.skip(f"a read-only folder can still be written to here ({result.stderr.strip()[-200:]!r})")
    return prefix


def cartoonkit(prefix: list[str], *argv) -> subprocess.CompletedProcess:
    return subprocess.run([*prefix, sys.executable, "-m", "cartoonkit", *map(str, argv)], capture_output=True,
                          text=True, timeout=TIMEOUT_S, env={**os.environ, "PYTHONUNBUFFERED": "1"})


@pytest.fixture
def three(shared_images, tmp_path, models_dir) -> Path:
    """in/ with two photos on top and one in z/ (processed last)."""
    root = tmp_path / "in"
    (root / "z").mkdir(parents=True)
    shutil.copy(shared_images / PORTRAITS[0], root / PORTRAITS[0])
    shutil.copy(shared_images / PORTRAITS[1], root / PORTRAITS[1])
    shutil.copy(shared_images / PORTRAITS[2], root / "z" / PORTRAITS[2])
    return root


@pytest.fixture
def reference(cartoonizer, three, tmp_path) -> dict[str, bytes]:
    """The outputs of an uninterrupted batch of ``three``, made in this process."""
    report = run_folder(three, tmp_path / "reference", CONFIG, cartoonizer=cartoonizer, progress=False)
    assert report.done == 3
    return image_files(tmp_path / "reference")


@pytest.fixture
def read_only(tmp_path):
    """``read_only(folder)`` makes ``folder`` 0555 for this test; restored afterwards so it can be deleted."""
    folders = []

    def make(folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o555)
        folders.append(folder)
        return folder

    yield make
    for folder in folders:
        folder.chmod(0o755)


def test_unwritable_output_folder_stops_at_once_and_resume_finishes(unprivileged, three, reference, read_only,
                                                                    tmp_path):
    out = read_only(tmp_path / "out")
    result = cartoonkit(unprivileged, "-q", "batch", three, "-o", out, "--device", "cpu", *SMALL)
    assert result.returncode == 2, result.stderr
    assert error_lines(result.stderr) == [f"error: cannot write to the output folder {out}: Permission denied"]
    assert "Traceback" not in result.stderr
    assert os.listdir(out) == []  # nothing at all: no output, no temporary file, no state

    out.chmod(0o755)  # fixed
    result = cartoonkit(unprivileged, "-q", "batch", three, "-o", out, "--device", "cpu", "--resume", *SMALL)
    assert result.returncode == 0, result.stderr
    assert "3 done, 0 skipped, 0 failed" in result.stdout
    assert image_files(out) == reference


def test_output_subfolder_not_writable_stops_cleanly_mid_run_and_resume_finishes(unprivileged, three, reference,
                                                                                 read_only, tmp_path):
    out = tmp_path / "out"
    locked = read_only(out / "z")  # the two outputs on top can be written, the one in z/ cannot
    result = cartoonkit(unprivileged, "-q", "batch", three, "-o", out, "--device", "cpu", *SMALL)
    assert result.returncode == 2, result.stderr
    target = locked / (Path(PORTRAITS[2]).stem + ".png")
    # The readers and writers run in parallel, so the other photos may be written before or after the stop.
    written = image_files(out)
    assert set(written) <= set(reference) - {f"z/{target.name}"}
    assert all(written[name] == reference[name] for name in written)  # whole files only
    assert temporary_files(out) == []
    left = 3 - len(written)
    assert error_lines(result.stderr) == [
        f"error: cannot write {target}: Permission denied; stopped with {left} file(s) not processed: "
        "fix that and rerun with --resume"]
    assert "Traceback" not in result.stderr
    report = json.loads((out / REPORT_FILE).read_text())
    assert report["stopped"] == f"cannot write {target}: Permission denied" and not report["complete"]
    assert report["counts"] == {"found": 3, "done": len(written), "skipped": 0, "failed": 0, "not_processed": left}

    locked.chmod(0o755)  # fixed
    result = cartoonkit(unprivileged, "-q", "batch", three, "-o", out, "--device", "cpu", "--resume", *SMALL)
    assert result.returncode == 0, result.stderr
    assert f"{left} done, {3 - left} skipped, 0 failed" in result.stdout
    assert image_files(out) == reference
    assert json.loads((out / REPORT_FILE).read_text())["complete"]


def test_output_folder_that_cannot_be_created(unprivileged, three, read_only, tmp_path):
    out = read_only(tmp_path / "locked") / "out"
    result = cartoonkit(unprivileged, "-q", "batch", three, "-o", out, "--device", "cpu", *SMALL)
    assert result.returncode == 2
    assert error_lines(result.stderr) == [f"error: cannot create the output folder {out}: Permission denied"]
    assert not out.exists()


def test_run_into_an_unwritable_folder_and_an_unreadable_input(unprivileged, three, read_only, tmp_path):
    out = read_only(tmp_path / "out")
    photos = [three / PORTRAITS[0], three / PORTRAITS[1]]
    secret = shutil.copy(photos[0], three / "secret.jpg")
    os.chmod(secret, 0)
    result = cartoonkit(unprivileged, "run", *photos, secret, "-o", out, "--device", "cpu", *SMALL)
    assert result.returncode == 1
    expected = [f"error: cannot write {out / (p.stem + '.png')}: Permission denied" for p in photos]
    expected.append(f"error: {secret}: permission denied (file is not readable)")
    assert error_lines(result.stderr) == expected and "Traceback" not in result.stderr
    assert "0 done, 0 skipped, 3 failed" in result.stdout
    assert os.listdir(out) == []


# --------------------------------------------------------------------------- limits at their edges


BUILDERS = {  # format -> (Pillow's name, extra save options)
    "png": ("PNG", {}), "jpg": ("JPEG", {"quality": 90}), "webp": ("WEBP", {"quality": 90}), "gif": ("GIF", {}),
    "bmp": ("BMP", {}), "tiff": ("TIFF", {}),
}


@pytest.mark.parametrize("fmt", sorted(BUILDERS))
def test_pixel_limit_is_inclusive_in_read_image(fmt):
    width, height = 37, 23  # 851 pixels
    kind, options = BUILDERS[fmt]
    data = encode(Image.fromarray(pattern(height, width, seed=3)), kind, **options)
    image = read_image(data, name="edge", limits=ImageLimits(max_pixels=width * height))
    assert tuple(image.rgb.shape) == (3, height, width)
    with pytest.raises(InvalidImageError) as refused:
        read_image(data, name="edge", limits=ImageLimits(max_pixels=width * height - 1))
    assert str(refused.value) == "edge: image is 37x23 = 851 pixels, more than the pixel limit of 850"


@pytest.mark.parametrize("command", ["run", "batch"])
def test_pixel_limit_is_inclusive_on_the_command_line(capsys, command, shared_images, tmp_path, models_dir):
    src = tmp_path / "in"
    src.mkdir()
    photo = shutil.copy(shared_images / PORTRAITS[0], src / PORTRAITS[0])
    with Image.open(photo) as im:
        width, height = im.size
    pixels = width * height

    code, stdout, stderr = run_cli(capsys, command, src, "-o", tmp_path / "at", "--max-pixels", pixels,
                                   "--device", "cpu", *SMALL)
    assert code == 0, stderr
    assert "1 done, 0 skipped, 0 failed" in stdout
    assert (tmp_path / "at" / (photo.stem + ".png")).is_file()

    code, stdout, stderr = run_cli(capsys, command, src, "-o", tmp_path / "below", "--max-pixels", pixels - 1,
                                   "--device", "cpu", *SMALL)
    assert code == 1
    assert "0 done, 0 skipped, 1 failed" in stdout
    lines = error_lines(stderr)
    assert len(lines) == 1 and photo.name in lines[0]
    assert lines[0].endswith(f"image is {width}x{height} = {pixels:,} pixels, more than the pixel limit of "
                             f"{pixels - 1:,}")
    assert not (tmp_path / "below" / (photo.stem + ".png")).exists()


def test_file_size_limit_is_inclusive_and_checked_before_reading(tmp_path):
    data = encode(Image.fromarray(pattern(40, 60, seed=4)), "PNG")
    path = tmp_path / "edge.png"
    path.write_bytes(data)
    assert read_image(path, limits=ImageLimits(max_file_bytes=len(data))).rgb.shape == (3, 40, 60)
    with pytest.raises(InvalidImageError, match=f"file is {len(data):,} bytes, larger than the limit of "
                                                f"{len(data) - 1:,} bytes"):
        read_image(path, limits=ImageLimits(max_file_bytes=len(data) - 1))

    huge = tmp_path / "huge.jpg"  # sparse: 1 GiB on paper, nothing on disk
    with open(huge, "wb") as file:
        file.truncate(1 << 30)
    tracemalloc.start()
    try:
        with pytest.raises(InvalidImageError, match="file is 1,073,741,824 bytes, larger than the limit of "
                                                    "268,435,456 bytes"):
            read_image(huge)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1024 * 1024, peak  # not read: reading it would take 1 GiB


# name -> (format, declared side, bytes). 40000 x 40000 is 1.6 billion pixels, 4.8 GB as RGB; Pillow's own check
# (Image.open, above 2 x PIL.Image.MAX_IMAGE_PIXELS = 178,956,970) refuses it first. 10000 x 10000 passes Pillow's
# check, so our limit (64,000,000) is the one that refuses it. 16384 x 16384 is the largest WEBP canvas.
BOMBS = {"png": ("png", 40_000, png_bomb(40_000, 40_000)), "jpg": ("jpg", 40_000, jpeg_bomb(40_000, 40_000)),
         "gif": ("gif", 40_000, gif_bomb(40_000, 40_000)), "webp": ("webp", 16_384, webp_bomb(16_384, 16_384)),
         "png 10000": ("png", 10_000, png_bomb(10_000, 10_000))}
PILLOW_LIMIT = 2 * Image.MAX_IMAGE_PIXELS  # 178,956,970 with Pillow's default

# Run in a fresh interpreter: decode a small image of each format first (plugins loaded, buffers warm), then
# reset the peak resident size and refuse the bomb; report the peak's growth. A decodable 4000 x 4000 image
# is the control that shows the measurement sees a real decode.
_MEASURE = r"""
import json, sys
from cartoonkit.imageio import ImageLimits, read_image
from cartoonkit.errors import InvalidImageError

def kib(field):
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":"))

results = {}
for key, path, warm, max_pixels in json.loads(sys.argv[1]):
    read_image(warm)
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")  # the peak (VmHWM) starts again from the current size
    before = kib("VmRSS")
    try:
        read_image(path, limits=ImageLimits(max_pixels=max_pixels))
        message = None
    except InvalidImageError as exc:
        message = str(exc)
    results[key] = {"message": message, "growth_kib": kib("VmHWM") - before}
print(json.dumps(results))
"""


def test_decompression_bombs_are_refused_without_allocating_the_pixels(tmp_path):
    if not Path("/proc/self/clear_refs").exists():
        pytest.skip("needs Linux's /proc/self/clear_refs to measure the peak memory")
    jobs = []
    for name, (fmt, side, data) in BOMBS.items():
        kind, options = BUILDERS[fmt]
        warm = tmp_path / f"warm.{fmt}"
        warm.write_bytes(encode(Image.fromarray(pattern(16, 16, seed=5)), kind, **options))
        bomb = tmp_path / f"bomb {name}.{fmt}"
        bomb.write_bytes(data)
        jobs.append((name, str(bomb), str(warm), DEFAULT_MAX_PIXELS))
        if side * side > PILLOW_LIMIT:  # our limit raised past the bomb: Pillow's own check must still refuse it
            jobs.append((f"{name} raised", str(bomb), str(warm), 2_000_000_000))
    control = tmp_path / "control.png"
    control.write_bytes(encode(Image.new("RGB", (4000, 4000)), "PNG"))  # 48 MB of pixels in a small file
    jobs.append(("control", str(control), str(tmp_path / "warm.png"), DEFAULT_MAX_PIXELS))

    result = subprocess.run([sys.executable, "-c", _MEASURE, json.dumps(jobs)], capture_output=True, text=True,
                            timeout=TIMEOUT_S)
    assert result.returncode == 0, result.stderr
    measured = json.loads(result.stdout)
    print(json.dumps(measured, indent=1))  # the numbers in docs/robustness.md

    # the measurement sees a real decode: 48 MB of pixels, in Pillow and again as an array
    assert measured["control"]["message"] is None and measured["control"]["growth_kib"] > 40 * 1024
    for name, (_, side, _) in BOMBS.items():
        pixels = side * side
        dims = f"{side}x{side} = " if pixels <= PILLOW_LIMIT else ""  # Pillow's error does not give the sides
        assert measured[name]["message"].endswith(
            f"image is {dims}{pixels:,} pixels, more than the pixel limit of 64,000,000"), measured[name]
        assert measured[name]["growth_kib"] < 50 * 1024, measured[name]  # the pixels would be 0.3-4.8 GB
        if pixels > PILLOW_LIMIT:
            raised = measured[f"{name} raised"]
            assert raised["message"].endswith(f"image is {pixels:,} pixels, more than Pillow's limit of "
                                              f"{PILLOW_LIMIT:,} (PIL.Image.MAX_IMAGE_PIXELS)"), raised
            assert raised["growth_kib"] < 50 * 1024, raised


def test_tiff_tile_bomb_is_refused_before_the_decoder_allocates_the_tile(tmp_path):
    """libtiff allocates a whole tile whatever the image size: a 178-byte, 64x64 TIFF with one 12288x12288
    RGBA16 tile would cost 1.2 GB. The tile is held to the pixel limit, checked before decoding."""
    if not Path("/proc/self/clear_refs").exists():
        pytest.skip("needs Linux's /proc/self/clear_refs to measure the peak memory")
    warm, bomb = tmp_path / "warm.tiff", tmp_path / "tiles.tiff"
    warm.write_bytes(encode(Image.fromarray(pattern(16, 16, seed=5)), "TIFF", compression="tiff_deflate"))
    bomb.write_bytes(tiff_tile_bomb(64, 12288))
    jobs = [("tiles", str(bomb), str(warm), DEFAULT_MAX_PIXELS),
            ("tiles, limit raised", str(bomb), str(warm), 2_000_000_000)]  # the control: what the check saves
    result = subprocess.run([sys.executable, "-c", _MEASURE, json.dumps(jobs)], capture_output=True, text=True,
                            timeout=TIMEOUT_S)
    assert result.returncode == 0, result.stderr
    measured = json.loads(result.stdout)
    print(json.dumps(measured, indent=1))  # the numbers in docs/robustness.md
    assert measured["tiles"]["message"].endswith(
        "TIFF tiles of 12288x12288 = 150,994,944 pixels each, more than the pixel limit of 64,000,000")
    assert measured["tiles"]["growth_kib"] < 50 * 1024, measured
    raised = measured["tiles, limit raised"]
    assert "truncated or corrupt" in raised["message"] and raised["growth_kib"] > 500 * 1024, measured
