"""``cartoonkit batch``: layout, formats, the per-file report, batched == single, resume after kill -9,
skipping and overwriting, a full disk, and outputs that must never escape or overwrite an input."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import image_files, run_cli, temporary_files
from PIL import Image

from cartoonkit import CartoonConfig, OutputError
from cartoonkit.cli import main
from cartoonkit.folder import JOURNAL_FILE, LOCK_FILE, REPORT_FILE, STATE_FILE, run_folder
from cartoonkit.folder import storage as storage_module
from cartoonkit.imageio import read_image

SMALL = ["--resolution", "256"]
CONFIG = CartoonConfig(resolution=256)
# At resolution 256 the four portraits share one bucket shape (256 x 171 -> 256 x 172): a mixed batch.
PORTRAITS = ["wb_mountain4.jpg", "wb_food16.jpg", "wb_london1.jpg", "wb_party5.jpg"]
OTHERS = ["ag3_v3_3.jpg", "bf_3faces.png"]  # 171 x 256 and 256 x 256


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im).astype(int)


def load_report(out: Path) -> dict:
    return json.loads((out / REPORT_FILE).read_text())


@pytest.fixture
def tree(shared_images, tmp_path, models_dir) -> Path:
    """in/ with nested folders: 4 portraits, a landscape and a PNG square."""
    root = tmp_path / "in"
    layout = {PORTRAITS[0]: "", PORTRAITS[1]: "a", PORTRAITS[2]: "a/b", PORTRAITS[3]: "a/b",
              OTHERS[0]: "c", OTHERS[1]: ""}
    for name, folder in layout.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        shutil.copy(shared_images / name, root / folder / name)
    return root


EXPECTED = {"wb_mountain4.png", "a/wb_food16.png", "a/b/wb_london1.png", "a/b/wb_party5.png", "c/ag3_v3_3.png",
            "bf_3faces.png"}


# --------------------------------------------------------------------------- layout, formats, report


@pytest.mark.parametrize("fmt", ["png", "jpg", "webp"])
def test_layout_and_formats(capsys, tree, tmp_path, fmt):
    out = tmp_path / "out"
    code, stdout, stderr = run_cli(capsys, "-q", "batch", tree, "-o", out, "--format", fmt, *SMALL)
    assert code == 0, stderr
    expected = {name.replace(".png", "." + fmt) for name in EXPECTED}
    assert set(image_files(out)) == expected
    for name in expected:
        with Image.open(out / name) as im:
            assert im.format == {"png": "PNG", "jpg": "JPEG", "webp": "WEBP"}[fmt]
            assert max(im.size) == 256
    assert "6 done, 0 skipped, 0 failed" in stdout and f"report: {out / REPORT_FILE}" in stdout
    assert temporary_files(out) == []
    report = load_report(out)
    assert report["counts"] == {"found": 6, "done": 6, "skipped": 0, "failed": 0, "not_processed": 0}
    assert report["complete"] and report["settings"]["format"] == fmt and report["settings"]["resolution"] == 256
    assert set(report["seconds"]) >= {"read", "decode", "network", "encode", "write", "wall"}
    assert report["seconds"]["network"] > 0 and report["images_per_second"] > 0
    assert report["devices"] == [str(torch.device("cuda" if torch.cuda.is_available() else "cpu"))]


def test_progress_bar_summary_and_report_path(capsys, tree, tmp_path):
    where = tmp_path / "reports" / "r.json"
    code, stdout, stderr = run_cli(capsys, "batch", tree, "-o", tmp_path / "out", "--device", "cpu",
                                   "--report", where, *SMALL)
    assert code == 0
    assert "img/s" in stderr and "cartoonizing" in stderr  # tqdm's bar, on stderr
    assert "img/s" in stdout.splitlines()[0]               # the summary line
    assert f"report: {where}" in stdout and not (tmp_path / "out" / REPORT_FILE).exists()
    assert json.loads(where.read_text())["counts"]["done"] == 6


def test_per_file_errors(capsys, tree, tmp_path):
    bad = tree / "bad"
    bad.mkdir()
    (bad / "empty.jpg").write_bytes(b"")
    (bad / "text.jpg").write_text("hello, I am not a picture\n")
    data = (tree / PORTRAITS[0]).read_bytes()
    (bad / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (bad / "notes.txt").write_text("not an image, not even looked at\n")
    out = tmp_path / "out"

    code, stdout, stderr = run_cli(capsys, "-q", "batch", tree, "-o", out, "--device", "cpu", *SMALL)

    assert code == 1
    assert set(image_files(out)) == EXPECTED  # every good file done
    problems = {"empty.jpg": "empty", "text.jpg": "not an image", "truncated.jpg": "truncated"}
    for name, problem in problems.items():
        lines = [line for line in stderr.splitlines() if name in line]
        assert len(lines) == 1, stderr
        assert lines[0].startswith("error:") and problem in lines[0].lower()
    assert "notes.txt" not in stderr and "Traceback" not in stderr  # -q: skipped files are in the report only
    assert "6 done, 1 skipped, 3 failed" in stdout
    report = load_report(out)
    assert report["counts"]["failed"] == 3 and report["counts"]["done"] == 6
    assert [(Path(e["file"]).name, e["kind"]) for e in report["skipped"]] == [("notes.txt", "not an image")]
    reasons = {Path(entry["file"]).name: entry["reason"] for entry in report["failed"]}
    assert set(reasons) == set(problems)
    for name, problem in problems.items():
        assert problem in reasons[name].lower()
        assert not reasons[name].startswith(str(bad))  # the file is named once, in "file"
    assert report["complete"]  # failed files are final: nothing left for --resume


# --------------------------------------------------------------------------- batched == single


def test_process_many_equals_process(cartoonizer, shared_images, monkeypatch):
    images = [read_image(shared_images / name) for name in [*PORTRAITS, *OTHERS]]
    sizes = []
    real = cartoonizer.run_network

    def spy(photos, *args, **kwargs):
        sizes.append(len(photos))
        return real(photos, *args, **kwargs)

    monkeypatch.setattr(cartoonizer, "run_network", spy)
    together = cartoonizer.process_many(images, CONFIG, max_batch=8)
    assert sorted(sizes) == [1, 1, 4]  # the four portraits (three sizes of image) ran as one batch
    for image, result in zip(images, together, strict=True):
        alone = cartoonizer.process(image, CONFIG)
        assert result.rgb.shape == alone.rgb.shape
        assert (result.rgb.int() - alone.rgb.int()).abs().max() <= 1
        assert result.name == image.name


def test_process_many_keeps_alpha_and_order(cartoonizer):
    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, (300, 200, 4), dtype=np.uint8)
    rgb = rng.integers(0, 256, (301, 200, 3), dtype=np.uint8)  # same bucket shape at 256, different size
    from cartoonkit.imagetypes import to_decoded

    images = [to_decoded(rgba), to_decoded(rgb)]
    results = cartoonizer.process_many(images, CONFIG)
    for image, result in zip(images, results, strict=True):
        alone = cartoonizer.process(image, CONFIG)
        assert torch.equal(result.rgb, alone.rgb) or (result.rgb.int() - alone.rgb.int()).abs().max() <= 1
        assert (result.alpha is None) == (alone.alpha is None)
    assert torch.equal(results[0].alpha, cartoonizer.process(images[0], CONFIG).alpha)


def test_batch_results_equal_single_photo_results(cartoonizer, tree, tmp_path):
    out = tmp_path / "out"
    report = run_folder(tree, out, CONFIG, cartoonizer=cartoonizer, batch_size=8, progress=False)
    assert report.done == 6 and not report.failed
    for name in EXPECTED:
        source = next(tree.rglob(Path(name).stem + ".*"))
        alone = cartoonizer(source, style_weight=CONFIG.style_weight, resolution=256)
        assert np.abs(pixels(out / name) - alone.astype(int)).max() <= 1, name


def test_finisher_thread_gives_the_same_files(cartoonizer, tree, tmp_path, monkeypatch):
    """The finisher stage (a thread of its own on CUDA, where it overlaps the device's work) forced on the CPU,
    batches of one and slow writers, so batches queue up behind it and it still delivers after the engine loop
    has ended: every file arrives, byte for byte what the inline path writes."""
    import functools

    from cartoonkit.folder import stream, workers

    inline = tmp_path / "inline"
    run_folder(tree, inline, CONFIG, cartoonizer=cartoonizer, batch_size=1, progress=False)
    encode_image = stream.encode_image

    def slow_encode(*args, **kwargs):  # slower than the engine: the write queue fills up
        time.sleep(0.3)
        return encode_image(*args, **kwargs)

    monkeypatch.setattr(stream, "encode_image", slow_encode)
    monkeypatch.setattr(workers, "Stream", functools.partial(stream.Stream, finisher=True))
    threaded = tmp_path / "threaded"
    report = run_folder(tree, threaded, CONFIG, cartoonizer=cartoonizer, batch_size=1, io_threads=1, progress=False)
    assert report.done == 6 and not report.failed
    assert sum(report.batches.values()) == 6
    for name in EXPECTED:
        assert (threaded / name).read_bytes() == (inline / name).read_bytes(), name


# --------------------------------------------------------------------------- skip, overwrite, resume settings


def test_existing_outputs_are_kept_unless_overwrite(capsys, cartoonizer, tree, tmp_path):
    out = tmp_path / "out"
    (out / "a").mkdir(parents=True)
    kept = out / "a" / "wb_food16.png"
    kept.write_bytes(b"keep me")
    code, stdout, stderr = run_cli(capsys, "batch", tree, "-o", out, "--device", "cpu", *SMALL)
    assert code == 0
    assert kept.read_bytes() == b"keep me"
    assert "5 done, 1 skipped" in stdout
    assert any(line.startswith("skipped:") and "wb_food16" in line for line in stderr.splitlines())

    code, stdout, _ = run_cli(capsys, "-q", "batch", tree, "-o", out, "--device", "cpu", *SMALL)
    assert code == 0 and "0 done, 6 skipped" in stdout

    code, stdout, _ = run_cli(capsys, "-q", "batch", tree, "-o", out, "--device", "cpu", "--overwrite", *SMALL)
    assert code == 0 and "6 done, 0 skipped" in stdout
    assert kept.read_bytes() != b"keep me"
    assert not (out / JOURNAL_FILE).exists()  # a finished overwrite run leaves no journal


def test_resume_with_other_settings_is_refused(capsys, cartoonizer, tree, tmp_path):
    out = tmp_path / "out"
    run_folder(tree, out, CONFIG, cartoonizer=cartoonizer, progress=False)
    before = image_files(out)
    for extra in (["--resume"], []):
        code, stdout, stderr = run_cli(capsys, "batch", tree, "-o", out, "--device", "cpu", "--resolution", "320",
                                       *extra)
        assert code == 2
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:"), stderr
        assert "resolution 320" in lines[0] and "256" in lines[0] and "other settings" in lines[0]
        assert "Traceback" not in stderr
    assert image_files(out) == before
    # JPEG quality does not matter for PNG output, so it is no reason to refuse
    code, stdout, _ = run_cli(capsys, "-q", "batch", tree, "-o", out, "--device", "cpu", "--resume",
                              "--quality", "50", *SMALL)
    assert code == 0 and "0 done, 6 skipped" in stdout


def test_resume_without_a_recorded_batch_just_runs(capsys, tree, tmp_path):
    code, stdout, _ = run_cli(capsys, "-q", "batch", tree, "-o", tmp_path / "out", "--device", "cpu", "--resume",
                              *SMALL)
    assert code == 0 and "6 done" in stdout


def test_leftover_temporary_files_are_removed(cartoonizer, tree, tmp_path):
    out = tmp_path / "out"
    (out / "a" / "b").mkdir(parents=True)
    leftovers = [out / "a" / "b" / ".wb_london1.png.k3j_x9a2.tmp", out / ".wb_mountain4.png.abcdefgh.tmp"]
    for path in leftovers:
        path.write_bytes(b"half a file")
    unrelated = [out / ".keep", out / "a" / "notes.tmp"]
    for path in unrelated:
        path.write_text("mine")
    report = run_folder(tree, out, CONFIG, cartoonizer=cartoonizer, progress=False)
    assert report.done == 6
    assert not any(path.exists() for path in leftovers)
    assert all(path.read_text() == "mine" for path in unrelated)


def test_one_batch_at_a_time_per_output_folder(cartoonizer, tree, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    with open(out / LOCK_FILE, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(OutputError, match="another cartoonkit batch"):
            run_folder(tree, out, CONFIG, cartoonizer=cartoonizer, progress=False)
    assert run_folder(tree, out, CONFIG, cartoonizer=cartoonizer, progress=False).done == 6


def test_bad_arguments(capsys, tree, tmp_path):
    code, _, stderr = run_cli(capsys, "batch", tree / "nope", "-o", tmp_path / "out", *SMALL)
    assert code == 2 and "no such folder" in stderr
    code, _, stderr = run_cli(capsys, "batch", tree, "-o", tree, *SMALL)
    assert code == 2 and "input folder" in stderr
    code, _, stderr = run_cli(capsys, "batch", tree, "-o", tmp_path / "out", "--batch-size", "0", *SMALL)
    assert code == 2 and "batch_size=0" in stderr and "Traceback" not in stderr
    assert not (tmp_path / "out").exists()


def test_help_mentions_every_flag(capsys):
    with pytest.raises(SystemExit) as info:
        main(["batch", "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--output", "--style-weight", "--resolution", "--format", "--quality", "--device", "--model",
                 "--overwrite", "--max-pixels", "--batch-size", "--workers", "--devices", "--resume", "--report"):
        assert flag in text, flag


# --------------------------------------------------------------------------- never escape, never overwrite an input


def test_symbolic_links_and_loops(cartoonizer, tree, tmp_path, shared_images):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(shared_images / PORTRAITS[0], elsewhere / "secret.jpg")
    (tree / "loop").symlink_to(tree)                                  # a folder loop
    (tree / "a" / "up").symlink_to(tree / "a")                        # another one, deeper
    (tree / "outside").symlink_to(elsewhere)                          # a folder outside IN
    (tree / "secret.jpg").symlink_to(elsewhere / "secret.jpg")        # a file outside IN
    (tree / "alias.jpg").symlink_to(tree / "a" / PORTRAITS[1])        # a file inside IN: processed
    (tree / "dangling.jpg").symlink_to(tmp_path / "gone.jpg")
    out = tmp_path / "out"
    report = run_folder(tree, out, CONFIG, cartoonizer=cartoonizer, progress=False, echo=lambda line: None)
    assert set(image_files(out)) == EXPECTED | {"alias.png"}
    skipped = {Path(name).name: reason for name, reason in report.skipped}
    assert set(skipped) == {"loop", "up", "outside", "secret.jpg"}
    assert "not followed" in skipped["outside"] and "outside" in skipped["secret.jpg"]
    assert [(Path(name).name, reason) for name, reason in report.failed] == [("dangling.jpg", "broken symbolic link")]
    assert list(elsewhere.iterdir()) == [elsewhere / "secret.jpg"]


def test_symbolic_link_in_the_output_folder_cannot_lead_outside(cartoonizer, tree, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "a").symlink_to(elsewhere)  # OUT/a -> outside OUT
    report = run_folder(tree, out, CONFIG, cartoonizer=cartoonizer, progress=False, echo=lambda line: None)
    refused = sorted(Path(name).name for name, reason in report.failed if "outside" in reason)
    assert refused == ["wb_food16.jpg", "wb_london1.jpg", "wb_party5.jpg"]
    assert list(elsewhere.iterdir()) == []
    assert report.done == 3


def test_output_never_overwrites_an_input(cartoonizer, tmp_path, shared_images):
    out = tmp_path / "work"
    src = out / "in"  # IN inside OUT: OUT/in/p.png is the output of IN/in/p.png and an input itself
    (src / "in").mkdir(parents=True)
    shutil.copy(shared_images / "bf_3faces.png", src / "p.png")
    shutil.copy(shared_images / "bf_4faces.png", src / "in" / "p.png")
    before = (src / "p.png").read_bytes()
    report = run_folder(src, out, CONFIG, cartoonizer=cartoonizer, progress=False, echo=lambda line: None,
                       overwrite=True)
    assert (src / "p.png").read_bytes() == before
    assert [(name, "overwrite an input" in reason) for name, reason in report.failed] == [(str(src / "in/p.png"), True)]
    assert report.done == 1 and (out / "p.png").is_file()


def test_same_stem_is_a_collision(cartoonizer, tmp_path, shared_images):
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(shared_images / PORTRAITS[0], src / "a.jpg")
    shutil.copy(shared_images / "bf_3faces.png", src / "a.png")
    out = tmp_path / "out"
    report = run_folder(src, out, CONFIG, cartoonizer=cartoonizer, progress=False, echo=lambda line: None)
    assert report.done == 1 and len(report.failed) == 1
    name, reason = report.failed[0]
    assert name.endswith("a.png") and "already the output of" in reason
    with Image.open(out / "a.png") as im:
        assert im.size == (171, 256)  # the first input by name won: the portrait


def test_output_folder_inside_input_is_not_read_as_input(capsys, tree):
    out = tree / "cartoons"
    for expected in ("6 done, 1 skipped", "0 done, 7 skipped"):  # OUT itself is one entry, skipped
        code, stdout, _ = run_cli(capsys, "-q", "batch", tree, "-o", out, "--device", "cpu", *SMALL)
        assert code == 0 and expected in stdout
        skipped = {Path(e["file"]).name: e["kind"] for e in load_report(out)["skipped"]}
        assert skipped["cartoons"] == "the output folder, not searched"
    assert set(image_files(out)) == EXPECTED


# --------------------------------------------------------------------------- disk full, interrupted overwrite


def fill_disk_after(monkeypatch, writes: int) -> None:
    """Image writes fail with ENOSPC after ``writes`` of them (the report and state still get written)."""
    real = storage_module.write_atomic
    count = {"n": 0}

    def fake(path, data):
        if Path(path).suffix != ".json":
            count["n"] += 1
            if count["n"] > writes:
                raise OutputError(f"cannot write {path}: No space left on device") from OSError(
                    errno.ENOSPC, "No space left on device")
        real(path, data)

    monkeypatch.setattr(storage_module, "write_atomic", fake)


def test_disk_full_stops_cleanly_and_resume_finishes(capsys, monkeypatch, tree, tmp_path):
    reference = tmp_path / "reference"
    assert run_cli(capsys, "-q", "batch", tree, "-o", reference, "--device", "cpu", *SMALL)[0] == 0
    out = tmp_path / "out"
    with monkeypatch.context() as patch:
        fill_disk_after(patch, 2)
        code, stdout, stderr = run_cli(capsys, "-q", "batch", tree, "-o", out, "--device", "cpu", *SMALL)
    assert code == 2
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "No space left on device" in errors[0] and "--resume" in errors[0]
    assert "Traceback" not in stderr
    assert len(image_files(out)) == 2 and temporary_files(out) == []
    report = load_report(out)
    assert report["stopped"] and "No space left" in report["stopped"] and not report["complete"]
    assert report["counts"]["done"] == 2 and report["counts"]["not_processed"] == 4

    code, stdout, _ = run_cli(capsys, "-q", "batch", tree, "-o", out, "--device", "cpu", "--resume", *SMALL)
    assert code == 0 and "4 done, 2 skipped" in stdout
    assert image_files(out) == image_files(reference)


def test_interrupted_overwrite_resumes_exactly_the_rest(capsys, monkeypatch, tree, tmp_path):
    reference = tmp_path / "reference"
    assert run_cli(capsys, "-q", "batch", tree, "-o", reference, "--device", "cpu", *SMALL)[0] == 0
    out = tmp_path / "out"
    photo = ["--style-weight", "0"]  # first the plain photos, then cartoons over them
    assert run_cli(capsys, "-q", "batch", tree, "-o", out, "--device", "cpu", *photo, *SMALL)[0] == 0
    with monkeypatch.context() as patch:
        fill_disk_after(patch, 2)
        code, _, _ = run_cli(capsys, "-q", "batch", tree, "-o", out, "--device", "cpu", "--overwrite", *SMALL)
    assert code == 2 and (out / JOURNAL_FILE).is_file()
    # without --resume the half-replaced folder is not silently taken as done
    code, _, stderr = run_cli(capsys, "-q", "batch", tree, "-o", out, "--device", "cpu", *SMALL)
    assert code == 2 and "interrupted --overwrite" in stderr
    # the same command plus --resume replaces exactly the outputs not yet replaced
    code, stdout, _ = run_cli(capsys, "-q", "batch", tree, "-o", out, "--device", "cpu", "--overwrite", "--resume",
                              *SMALL)
    assert code == 0 and "4 done, 2 skipped" in stdout
    assert image_files(out) == image_files(reference)
    assert not (out / JOURNAL_FILE).exists()
    assert json.loads((out / STATE_FILE).read_text())["complete"]


# --------------------------------------------------------------------------- real processes


def make_twelve(shared_images: Path, root: Path) -> int:
    names = sorted(p.name for p in shared_images.iterdir() if p.suffix in (".jpg", ".png"))
    for i, name in enumerate(names):
        folder = root / ("" if i % 3 == 0 else f"set{i % 3}")
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(shared_images / name, folder / name)
    (root / "deep" / "er").mkdir(parents=True)
    shutil.copy(shared_images / names[0], root / "deep" / "er" / "again.jpg")
    return len(names) + 1


def count_outputs(folder: Path) -> int:
    return sum(1 for p in folder.rglob("*.png") if not p.name.startswith(".")) if folder.exists() else 0


def test_kill_9_at_several_points_then_resume(cartoonizer, shared_images, tmp_path, models_dir):
    src = tmp_path / "in"
    total = make_twelve(shared_images, src)
    env = {**os.environ, "CARTOONKIT_MODELS": str(models_dir)}  # the model is installed before any subprocess
    command = [sys.executable, "-m", "cartoonkit", "-q", "batch", str(src), "--device", "cpu", "--batch-size", "1",
               *SMALL]
    reference = tmp_path / "reference"  # uninterrupted, in this process: same device, precision and threads
    assert run_folder(src, reference, CONFIG, cartoonizer=cartoonizer, batch_size=1, progress=False).done == total

    out = tmp_path / "out"
    for more, extra in ((1, []), (2, ["--resume"])):  # kill after the first output, then 2 more into a resume
        before = count_outputs(out)
        process = subprocess.Popen([*command, "-o", str(out), *extra], env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 300
        while process.poll() is None and time.monotonic() < deadline:
            if count_outputs(out) >= before + more:
                break
            time.sleep(0.002)
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert process.returncode == -signal.SIGKILL, "the batch ended before it could be killed"
        assert before + more <= len(image_files(out)) < total

    done_before = len(image_files(out))
    finish = subprocess.run([*command, "-o", str(out), "--resume"], env=env, capture_output=True, text=True,
                            timeout=300)
    assert finish.returncode == 0, finish.stderr
    assert f"{total - done_before} done, {done_before} skipped, 0 failed" in finish.stdout
    assert image_files(out) == image_files(reference)  # same names, same bytes: nothing partial, nothing twice
    assert temporary_files(out) == []


def test_workers_on_cuda_are_refused(capsys, tree, tmp_path):
    code, _, stderr = run_cli(capsys, "batch", tree, "-o", tmp_path / "out", "--device", "cpu", "--workers", "2",
                              "--devices", "cpu,cpu", *SMALL)
    assert code == 2 and "--devices" in stderr


# --------------------------------------------------------------------------- GPU


@pytest.mark.gpu
def test_gpu_batch_decodes_and_encodes_on_the_gpu(tree, tmp_path, models_dir):
    from cartoonkit import Cartoonizer

    ck = Cartoonizer.from_pretrained(device="cuda")
    for fmt in ("jpg", "png"):
        out = tmp_path / fmt
        config = CartoonConfig(resolution=256, format=fmt)
        report = run_folder(tree, out, config, cartoonizer=ck, batch_size=8, progress=False)
        assert report.done == 6 and not report.failed
        assert report.gpu["decoded"] == 5  # the five JPEGs; the PNG goes through Pillow
        assert report.gpu["encoded"] == (6 if fmt == "jpg" else 0)
        for name in EXPECTED:
            path = out / name.replace(".png", "." + fmt)
            with Image.open(path) as im:
                assert max(im.size) == 256
        if fmt == "png":  # the PNG input took the same CPU decoder as a single photo: same pixels
            alone = ck(tree / "bf_3faces.png", resolution=256)
            assert np.abs(pixels(out / "bf_3faces.png") - alone.astype(int)).max() <= 2


@pytest.mark.gpu
def test_gpu_process_many_equals_process(shared_images, models_dir):
    from cartoonkit import Cartoonizer

    ck = Cartoonizer.from_pretrained(device="cuda")
    images = [read_image(shared_images / name) for name in [*PORTRAITS, *OTHERS]]
    together = ck.process_many(images, CONFIG, max_batch=8)
    for image, result in zip(images, together, strict=True):
        alone = ck.process(image, CONFIG)
        difference = (result.rgb.int() - alone.rgb.int()).abs()
        assert difference.max() <= 2 and difference.float().mean() < 0.05
