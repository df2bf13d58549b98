"""A folder of hostile inputs, generated here (no committed binaries), through ``batch`` and ``run`` once each.

Every file must end as either an output of the right size or a failure (or skip) with a specific reason;
the process must exit 1 (some files failed), never crash, hang (subprocess timeout) or grow without bound
(peak RSS of the child). ``docs/robustness.md`` summarises what this corpus holds and what happens to it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from image_builders import encode, gif_bomb, jpeg_bomb, pattern, png_bomb, raw_png, webp_bomb
from PIL import Image

RESOLUTION = 256
TIMEOUT_S = 300                 # a hang fails the test instead of blocking CI
MAX_CHILD_RSS = 2 * 1024 ** 3   # bytes; the bombs and the 1x100000 image must not get near it
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0

# --------------------------------------------------------------------------- builders


def exif_jpeg(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(Image.fromarray(pattern(32, 64, seed=orientation)), "JPEG", quality=90, exif=exif.tobytes())


def animated(format: str) -> bytes:
    frames = [Image.fromarray(pattern(30, 40, seed=s)) for s in range(3)]
    if format == "GIF":
        frames = [f.convert("P") for f in frames]
    return encode(frames[0], format, save_all=True, append_images=frames[1:], duration=100, loop=0)


def palette_with_transparency() -> bytes:
    image = Image.fromarray(pattern(24, 48, seed=5)).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    return encode(image, "PNG", transparency=0)


def cuts(data: bytes) -> list[int]:
    """About ten truncation offsets: inside the header, through the data, just before the end."""
    n = len(data)
    return sorted({1, 12, 40, *(int(n * f) for f in (0.2, 0.35, 0.5, 0.65, 0.8, 0.95)), n - 1})


TRUNCATED_SOURCES = {
    "jpg": lambda: encode(Image.fromarray(pattern(64, 96, seed=11)), "JPEG", quality=90),
    "png": lambda: encode(Image.fromarray(pattern(64, 96, seed=12)), "PNG"),
    "webp": lambda: encode(Image.fromarray(pattern(64, 96, seed=13)), "WEBP", quality=90),
}

# --------------------------------------------------------------------------- the corpus

OK = "ok"          # an output of this (width, height) exists
FAIL = "fail"      # in the report's "failed" with a reason matching the regex
SKIP = "skip"      # in the report's "skipped" with a reason matching the regex (batch only)


@dataclass
class Case:
    kind: str                  # what docs/robustness.md counts
    name: bytes                # file name (bytes: names need not be UTF-8)
    data: bytes | None         # None: made by ``make`` instead
    expect: str
    size: tuple[int, int] | None = None   # OK: output (width, height)
    reason: str = ""                      # FAIL/SKIP: regex for the reason
    note: str = ""                        # OK: regex one of the file's notes must match
    alpha: bool = False                   # OK: the PNG output keeps transparency
    run_expect: str | None = None         # `run` differs from `batch` (it follows links to files anywhere)
    make: str = ""  # "symlink-inside", "symlink-outside", "symlink-broken", "unreadable", "sparse"


NOT_IMAGE = r"not an image"
CORRUPT = r"not an image|truncated or corrupt|truncated image: the file ends after"
PIXEL_LIMIT = r"more than the pixel limit of 64,000,000"


def build_cases() -> list[Case]:
    good = encode(Image.fromarray(pattern(48, 64, seed=1)), "PNG")  # 64x48 -> 256x192
    cases = [
        Case("zero bytes", b"empty.jpg", b"", FAIL, reason=r"file is empty \(0 bytes\)"),
        Case("text with an image extension", b"text.jpg", b"just some notes, not a photo\n" * 20, FAIL,
             reason=NOT_IMAGE),
        Case("text with an image extension", b"html.png", b"<html><body>404</body></html>\n", FAIL, reason=NOT_IMAGE),
        Case("text with an image extension", b"binary_noise.webp", bytes(np.random.default_rng(7).integers(
            0, 256, 4096, dtype=np.uint8)), FAIL, reason=NOT_IMAGE),
        Case("wrong extension (content decides)", b"png_named.jpg", good, OK, size=(256, 192)),
        Case("wrong extension (content decides)", b"jpeg_named.png",
             encode(Image.fromarray(pattern(48, 64, seed=2)), "JPEG"), OK, size=(256, 192)),
        Case("wrong extension (content decides)", b"webp_named.gif",
             encode(Image.fromarray(pattern(64, 48, seed=3)), "WEBP"), OK, size=(192, 256)),
        Case("decompression bomb (declared size)", b"bomb_png.png", png_bomb(100_000, 100_000), FAIL,
             reason=PIXEL_LIMIT),
        Case("decompression bomb (declared size)", b"bomb_jpeg.jpg", jpeg_bomb(65_500, 65_500), FAIL,
             reason=PIXEL_LIMIT),
        Case("decompression bomb (declared size)", b"bomb_gif.gif", gif_bomb(65_535, 65_535), FAIL,
             reason=PIXEL_LIMIT),
        Case("decompression bomb (declared size)", b"bomb_webp.webp", webp_bomb(16_384, 16_384), FAIL,
             reason=PIXEL_LIMIT),
        Case("file over the size limit", b"huge_file.jpg", None, FAIL,
             reason=r"larger than the limit of 268,435,456 bytes", make="sparse"),
        Case("extreme shapes", b"one_by_one.png", encode(Image.new("RGB", (1, 1), (200, 30, 40)), "PNG"), OK,
             size=(256, 256)),
        Case("extreme shapes", b"tall_1x100000.png",
             encode(Image.fromarray(pattern(100_000, 1, seed=4)), "PNG"), OK, size=(1, 256)),
        Case("extreme shapes", b"wide_100000x1.png",
             encode(Image.fromarray(pattern(1, 100_000, seed=5)), "PNG"), OK, size=(256, 1)),
        Case("16-bit", b"grey16.png",
             raw_png(pattern(30, 40, 1).astype(np.uint16) * 257, 0),
             OK, size=(256, 192), note="16-bit"),
        Case("16-bit", b"rgb16.png", raw_png(pattern(30, 40).astype(np.uint16) * 257, 2), OK, size=(256, 192),
             note="16-bit"),
        Case("16-bit", b"rgba16.png", raw_png(pattern(30, 40, 4).astype(np.uint16) * 257, 6), OK,
             size=(256, 192), alpha=True, note="16-bit"),
        Case("CMYK", b"cmyk.jpg", encode(Image.fromarray(pattern(30, 40, 4), "CMYK"), "JPEG", quality=90), OK,
             size=(256, 192), note="CMYK"),
        Case("palette with transparency", b"palette_alpha.png", palette_with_transparency(), OK, size=(256, 128),
             alpha=True),
        Case("animated", b"animated_gif.gif", animated("GIF"), OK, size=(256, 192), note="first frame of 3"),
        Case("animated", b"animated_webp.webp", animated("WEBP"), OK, size=(256, 192), note="first frame of 3"),
        Case("broken EXIF", b"broken_exif.jpg",
             encode(Image.fromarray(pattern(32, 64)), "JPEG", exif=b"Exif\x00\x00II*\x00\xff\xff\xff\x7fgarbage"),
             OK, size=(256, 128), note="EXIF"),
        Case("broken EXIF", b"exif_not_tiff.jpg",
             encode(Image.fromarray(pattern(32, 64)), "JPEG", exif=b"Exif\x00\x00" + b"\x00" * 40),
             OK, size=(256, 128)),
        Case("file names", b"caf\xe9.jpg", encode(Image.fromarray(pattern(48, 64, seed=6)), "JPEG"), OK,
             size=(256, 192)),
        Case("file names", b"L" * 236 + b".jpg", encode(Image.fromarray(pattern(48, 64, seed=7)), "JPEG"), OK,
             size=(256, 192)),
        Case("file names", "é".encode() * 118 + b".jpg", encode(Image.fromarray(pattern(48, 64, seed=8)), "JPEG"),
             OK, size=(256, 192)),
        Case("file names", "\U0001F600".encode() * 62 + b".jpg", encode(Image.fromarray(pattern(48, 64, seed=10)),
             "JPEG"), OK, size=(256, 192)),  # 248 bytes: the temporary name must be cut by bytes
        Case("file names", b"spaces and 'quotes' $HOME;rm -rf.png", good, OK, size=(256, 192)),
        Case("symbolic links", b"link_inside.jpg", None, OK, size=(256, 192), make="symlink-inside"),
        Case("symbolic links", b"link_outside.jpg", None, SKIP, reason=r"outside the input folder; not followed",
             run_expect=OK, size=(256, 192), make="symlink-outside"),
        Case("symbolic links", b"link_broken.jpg", None, FAIL, reason=r"broken symbolic link",
             make="symlink-broken"),
        Case("unreadable file", b"unreadable.png", good, OK if IS_ROOT else FAIL, size=(256, 192),
             reason=r"permission denied", make="unreadable"),
    ]
    cases += [Case("EXIF orientation 1-8", f"exif_o{o}.jpg".encode(), exif_jpeg(o), OK,
                   size=(128, 256) if o >= 5 else (256, 128), note="" if o == 1 else f"orientation {o} applied")
              for o in range(1, 9)]
    for ext, source in TRUNCATED_SOURCES.items():
        data = source()
        # A PNG cut inside its final IEND chunk still holds every pixel: Pillow decodes it, and so do we.
        complete = data.rindex(b"IEND") - 4 if ext == "png" else len(data)
        cases += [Case(f"truncated {ext.upper()}", f"cut_{ext}_{cut:05d}.{ext}".encode(), data[:cut],
                       FAIL if cut < complete else OK, reason=CORRUPT, size=(256, 171)) for cut in cuts(data)]
    return cases


CASES = build_cases()
GOOD_TARGET = encode(Image.fromarray(pattern(48, 64, seed=9)), "JPEG")


def case_id(case: Case) -> str:
    return os.fsdecode(case.name).encode("ascii", "backslashreplace").decode()[:40]


PARAMS = [pytest.param(case, id=case_id(case)) for case in CASES]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("hostile")
    folder, outside = root / "in", root / "outside"
    folder.mkdir()
    outside.mkdir()
    (outside / "target.jpg").write_bytes(GOOD_TARGET)
    (folder / "sub").mkdir()
    (folder / "sub" / "target_inside.txt").write_bytes(GOOD_TARGET)  # not an image suffix: only the link is
    for case in CASES:
        path = os.path.join(os.fsencode(folder), case.name)
        if case.make == "symlink-inside":
            os.symlink(os.fsencode(folder / "sub" / "target_inside.txt"), path)
        elif case.make == "symlink-outside":
            os.symlink(os.fsencode(outside / "target.jpg"), path)
        elif case.make == "symlink-broken":
            os.symlink(os.fsencode(outside / "missing.jpg"), path)
        elif case.make == "sparse":
            with open(path, "wb") as file:
                file.write(b"\xff\xd8\xff\xe0")
                file.truncate(256 * 1024 * 1024 + 1)  # sparse: no disk used
        else:
            with open(path, "wb") as file:
                file.write(case.data)
            if case.make == "unreadable":
                os.chmod(path, 0)
    return folder


def snapshot(folder: Path) -> dict[bytes, tuple[int, int]]:
    found = {}
    for dirpath, _, files in os.walk(os.fsencode(folder)):
        for name in files:
            path = os.path.join(dirpath, name)
            info = os.lstat(path)
            found[path] = (info.st_size, int(info.st_mtime_ns))
    return found


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str
    out: Path
    seconds: float
    rss_bytes: int
    before: dict
    after: dict


def run_command(models_dir: Path, corpus: Path, command: str, out: Path) -> Outcome:
    env = {**os.environ, "CARTOONKIT_MODELS": str(models_dir)}
    before = snapshot(corpus.parent)
    argv = [command, str(corpus), "-o", str(out), "--resolution", str(RESOLUTION), "--device", "cpu",
            "--style-weight", "1.0"]
    start = time.monotonic()
    code, stdout, stderr, rss = run_measured(argv, env)
    seconds = time.monotonic() - start
    return Outcome(code, stdout, stderr, out, seconds, rss, before, snapshot(corpus.parent))


# The CLI's ``__main__`` run so that, at exit, it writes the peak resident size of its own memory (``VmHWM``, kB)
# to the file named in the environment. Not ``ru_maxrss`` from ``wait4``: Linux carries a process's peak RSS
# into its children across fork and exec, so every child of a test session that once peaked at 2 GiB would
# report 2 GiB; ``VmHWM`` belongs to the memory map, which exec replaces.
PEAK_REPORTING_MAIN = """
import atexit, os, runpy

def report_peak():
    with open("/proc/self/status") as status:
        kib = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
    with open(os.environ["CARTOONKIT_TEST_PEAK_FILE"], "w") as out:
        out.write(kib)

atexit.register(report_peak)
runpy.run_module("cartoonkit", run_name="__main__", alter_sys=True)
"""


def run_measured(argv: list[str], env: dict) -> tuple[int, str, str, int]:
    """Run ``cartoonkit *argv``; exit code, stdout, stderr and the peak RSS in bytes of that process alone."""
    if not Path("/proc/self/status").is_file():
        pytest.skip("needs Linux's /proc/self/status to measure the peak memory")
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, tempfile.TemporaryDirectory() as tmp:
        peak_file = Path(tmp) / "peak_kib"
        process = subprocess.Popen([sys.executable, "-c", PEAK_REPORTING_MAIN, *argv],
                                   env={**env, "CARTOONKIT_TEST_PEAK_FILE": str(peak_file)}, stdout=out, stderr=err)
        try:
            process.wait(timeout=TIMEOUT_S)  # a hang fails the test instead of blocking CI
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise
        out.seek(0)
        err.seek(0)
        assert peak_file.is_file(), "the child did not report its peak memory (killed?)"
        return (process.returncode, out.read().decode(errors="replace"), err.read().decode(errors="replace"),
                int(peak_file.read_text()) * 1024)


@pytest.fixture(scope="module")
def batch(corpus, models_dir) -> Outcome:
    return run_command(models_dir, corpus, "batch", corpus.parent / "out_batch")


@pytest.fixture(scope="module")
def run(corpus, models_dir) -> Outcome:
    return run_command(models_dir, corpus, "run", corpus.parent / "out_run")


@pytest.fixture(scope="module")
def report(batch) -> dict:
    return json.loads((batch.out / "cartoonkit-report.json").read_text())


def output_path(out: Path, case: Case) -> bytes:
    return os.path.join(os.fsencode(out), os.path.splitext(case.name)[0] + b".png")


def check_output(path: bytes, case: Case) -> None:
    assert os.path.isfile(path), f"no output {path!r}"
    with Image.open(path) as image:
        assert image.size == case.size, (case.name, image.size)
        if case.alpha:
            assert image.mode == "RGBA", image.mode
            assert np.asarray(image)[:, :, 3].min() < 255, "transparency was lost"


# --------------------------------------------------------------------------- the whole run


def test_batch_exits_1_without_crash_hang_or_leftovers(batch, report, corpus):
    print(f"\nbatch: exit {batch.code}, {batch.seconds:.1f} s, peak child RSS {batch.rss_bytes / 2**20:.0f} MiB; "
          f"{report['counts']}")
    assert batch.code == 1, batch.stderr[-3000:]
    assert "Traceback" not in batch.stderr and "unexpected" not in batch.stderr, batch.stderr[-3000:]
    assert batch.seconds < TIMEOUT_S
    assert batch.rss_bytes < MAX_CHILD_RSS, f"peak RSS {batch.rss_bytes / 2**20:.0f} MiB"
    assert report["complete"] and report["counts"]["not_processed"] == 0
    # every case, plus sub/ (searched) and its target_inside.txt (skipped: not an image), counted once each
    counted = report["counts"]["done"] + report["counts"]["failed"] + report["counts"]["skipped"]
    assert counted == len(CASES) + 1, report["counts"]
    assert report["account"]["entries"] == len(CASES) + 2 == sum(report["account"]["by_status"].values())
    assert report["account"]["by_status"]["folder"] == 1
    assert [(os.path.basename(e["file"]), e["kind"]) for e in report["skipped"] if e["kind"] != "link not followed"] \
        == [("target_inside.txt", "not an image")]
    assert all("unexpected" not in entry["reason"] for entry in report["failed"])


@pytest.mark.parametrize("outcome", ["batch", "run"])
def test_nothing_outside_out_and_no_temporary_files(outcome, request, corpus):
    result: Outcome = request.getfixturevalue(outcome)
    leftovers = [p for p in os.listdir(result.out) if p.endswith(b".tmp" if isinstance(p, bytes) else ".tmp")]
    assert leftovers == []
    assert not any(name.endswith(".tmp") for _, _, files in os.walk(result.out) for name in files)
    # The inputs and the folder outside are untouched; everything new is under this command's OUT.
    out = os.fsencode(result.out)
    new = {p for p in result.after if not p.startswith(out + b"/")} - set(result.before)
    new = {p for p in new if not p.startswith(os.fsencode(corpus.parent / "out_"))}  # the other command's OUT
    assert new == set()
    for path, stamp in result.before.items():
        if not path.startswith(os.fsencode(corpus.parent / "out_")):
            assert result.after.get(path) == stamp, path


@pytest.mark.parametrize("case", PARAMS)
def test_batch_per_file(case: Case, batch, report, corpus):
    src = os.fsdecode(os.path.join(os.fsencode(corpus), case.name))
    failed = {entry["file"]: entry["reason"] for entry in report["failed"]}
    skipped = {entry["file"]: entry["reason"] for entry in report["skipped"]}
    notes = [entry["note"] for entry in report["notes"] if entry["file"] == src]
    out = output_path(batch.out, case)
    if case.expect == OK:
        assert src not in failed, failed.get(src)
        check_output(out, case)
        if case.note:
            assert any(re.search(case.note, note) for note in notes), notes
    else:
        assert not os.path.lexists(out)
        where = failed if case.expect == FAIL else skipped
        assert src in where, f"{src!r} not {case.expect}ed; failed={failed.get(src)} skipped={skipped.get(src)}"
        assert re.search(case.reason, where[src]), where[src]
        if case.expect == FAIL and src.isascii():  # one line on stderr, naming the file
            lines = [line for line in batch.stderr.splitlines() if src in line]
            assert len(lines) == 1 and lines[0].startswith("error:"), lines


def test_run_exits_1_without_crash(run):
    print(f"\nrun: exit {run.code}, {run.seconds:.1f} s, peak child RSS {run.rss_bytes / 2**20:.0f} MiB; "
          f"{run.stdout.strip()}")
    assert run.code == 1, run.stderr[-3000:]
    assert "Traceback" not in run.stderr and "unexpected" not in run.stderr, run.stderr[-3000:]
    assert run.rss_bytes < MAX_CHILD_RSS


@pytest.mark.parametrize("case", PARAMS)
def test_run_per_file(case: Case, run, corpus):
    expect = case.run_expect or case.expect
    out = output_path(run.out, case)
    src = os.fsdecode(os.path.join(os.fsencode(corpus), case.name))
    lines = [line for line in run.stderr.splitlines() if src in line] if src.isascii() else []
    if expect == OK:
        check_output(out, case)
        assert lines == []
    else:
        assert not os.path.lexists(out)
        if src.isascii():
            assert len(lines) == 1 and lines[0].startswith("error:"), lines
            assert re.search(case.reason, lines[0]), lines[0]


def test_corpus_counts_for_the_docs():
    """The numbers docs/robustness.md quotes (printed with -s)."""
    counts = Counter(case.kind for case in CASES)
    print("\n" + "\n".join(f"{n:3d}  {kind}" for kind, n in counts.items()) + f"\n{len(CASES):3d}  total")
    assert len(CASES) >= 60
