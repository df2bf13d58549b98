"""The ``cartoonkit`` command line, mostly in-process through ``cli.main``, once as a real subprocess."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import run_cli
from PIL import Image

from cartoonkit.cli import main

PORTRAIT = "wb_mountain4.jpg"  # 400 x 600 -> 171 x 256 at resolution 256
SECOND = "ag3_v3_3.jpg"        # 1280 x 854 -> 256 x 171
SMALL = ["--resolution", "256"]


def expected_wh(path: Path, long_side: int = 256) -> tuple[int, int]:
    with Image.open(path) as im:
        width, height = im.size
    if height >= width:
        return round(width * long_side / height), long_side
    return long_side, round(height * long_side / width)


@pytest.fixture
def photos(shared_images, tmp_path, models_dir) -> list[Path]:
    """Two real photos copied into tmp_path/in, so outputs never land in the shared folder."""
    folder = tmp_path / "in"
    folder.mkdir()
    copies = []
    for name in (PORTRAIT, SECOND):
        copies.append(folder / name)
        shutil.copy(shared_images / name, copies[-1])
    return copies


def leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.endswith(".tmp")] if folder.exists() else []


# --------------------------------------------------------------------------- run


def test_run_good_and_bad_files(capsys, photos, tmp_path):
    folder = photos[0].parent
    empty = folder / "empty.jpg"
    empty.write_bytes(b"")
    text = folder / "x.jpg"
    text.write_text("hello, I am not a picture\n")
    truncated = folder / "truncated.jpg"
    data = photos[0].read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    out = tmp_path / "out"

    code, stdout, stderr = run_cli(capsys, "run", *photos, empty, text, truncated, "-o", out, *SMALL)

    assert code == 1
    for photo in photos:
        result = out / (photo.stem + ".png")
        with Image.open(result) as im:
            assert im.format == "PNG" and im.size == expected_wh(photo)
    lines = stderr.splitlines()
    for bad, problem in ((empty, "empty"), (text, "not an image"), (truncated, "truncated")):
        mentions = [line for line in lines if bad.name in line]
        assert len(mentions) == 1, (bad.name, stderr)
        assert problem in mentions[0].lower() and "error" in mentions[0].lower()
        assert not (out / (bad.stem + ".png")).exists()
    assert sorted(p.name for p in out.iterdir()) == sorted(p.stem + ".png" for p in photos)
    assert leftovers(out) == [] and leftovers(folder) == []
    assert "2 done" in stdout and "3 failed" in stdout
    assert "Traceback" not in stderr


@pytest.mark.parametrize("fmt", ["jpg", "webp"])
def test_run_formats(capsys, photos, tmp_path, fmt):
    out = tmp_path / "out"
    code, stdout, _ = run_cli(capsys, "run", photos[0], "-o", out, "--format", fmt, *SMALL)
    assert code == 0 and "1 done" in stdout
    result = out / (photos[0].stem + "." + fmt)
    with Image.open(result) as im:
        assert im.format == {"jpg": "JPEG", "webp": "WEBP"}[fmt]
        assert im.size == expected_wh(photos[0])
    assert [p.name for p in out.iterdir()] == [result.name]


def test_run_quality_changes_jpeg_size(capsys, photos, tmp_path):
    sizes = {}
    for quality in (20, 95):
        out = tmp_path / f"q{quality}"
        code, _, _ = run_cli(capsys, "run", photos[0], "-o", out, "--format", "jpg", "--quality", quality, *SMALL)
        assert code == 0
        sizes[quality] = (out / (photos[0].stem + ".jpg")).stat().st_size
    assert sizes[20] < 0.7 * sizes[95]


def test_run_folder_takes_only_images(capsys, photos, tmp_path):
    folder = photos[0].parent
    (folder / "notes.txt").write_text("not an image\n")
    out = tmp_path / "out"
    code, stdout, stderr = run_cli(capsys, "run", folder, "-o", out, *SMALL)
    assert code == 0, stderr
    assert "2 done, 1 skipped, 0 failed" in stdout
    assert sorted(p.name for p in out.iterdir()) == sorted(p.stem + ".png" for p in photos)
    # not taken, but accounted for: one line saying why, and the folder's entries counted
    assert [line for line in stderr.splitlines() if "notes" in line] == \
        [f"skipped: {folder / 'notes.txt'}: .txt is not an image extension cartoonkit reads"]
    assert "3 entries in the inputs given: 2 done; 1 skipped (1 not an image)" in stdout


def test_existing_outputs_are_kept_unless_overwrite(capsys, photos, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    existing = out / (photos[0].stem + ".png")
    existing.write_bytes(b"keep me")
    code, stdout, stderr = run_cli(capsys, "run", photos[0], "-o", out, *SMALL)
    assert code == 0
    assert existing.read_bytes() == b"keep me"
    assert "1 skipped" in stdout and "0 done" in stdout
    assert any("skipped" in line and photos[0].name in line for line in stderr.splitlines()), stderr

    code, stdout, _ = run_cli(capsys, "run", photos[0], "-o", out, "--overwrite", *SMALL)
    assert code == 0 and "1 done" in stdout
    with Image.open(existing) as im:
        assert im.format == "PNG" and im.size == expected_wh(photos[0])
    assert leftovers(out) == []


def test_output_that_would_overwrite_input_is_refused(capsys, tmp_path, shared_images, models_dir):
    folder = tmp_path / "pics"
    folder.mkdir()
    source = folder / "faces.png"
    shutil.copy(shared_images / "bf_3faces.png", source)
    before = source.read_bytes()
    code, stdout, stderr = run_cli(capsys, "run", source, "-o", folder, "--format", "png", *SMALL)
    assert code == 1
    assert source.read_bytes() == before
    assert [p.name for p in folder.iterdir()] == ["faces.png"]
    assert "faces.png" in stderr and "overwrite" in stderr
    assert "1 failed" in stdout and "0 done" in stdout


def test_same_stem_is_a_collision(capsys, tmp_path, shared_images, models_dir):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(shared_images / PORTRAIT, folder / "a.jpg")
    shutil.copy(shared_images / "bf_3faces.png", folder / "a.png")
    out = tmp_path / "out"
    code, stdout, stderr = run_cli(capsys, "run", folder / "a.jpg", folder / "a.png", "-o", out, *SMALL)
    assert code == 1
    assert [p.name for p in out.iterdir()] == ["a.png"]
    with Image.open(out / "a.png") as im:  # the first input won: the portrait, not the 128 x 128 square
        assert im.size == expected_wh(folder / "a.jpg")
    collision = [line for line in stderr.splitlines() if "a.png" in line and "error" in line]
    assert len(collision) == 1 and "already the output of" in collision[0]
    assert "1 done" in stdout and "1 failed" in stdout


@pytest.mark.parametrize("flag, value, setting", [("--style-weight", "2", "style"),
                                                  ("--resolution", "10", "resolution"),
                                                  ("--quality", "0", "quality")])
def test_bad_settings_exit_2_with_one_line(capsys, tmp_path, flag, value, setting):
    out = tmp_path / "out"
    code, stdout, stderr = run_cli(capsys, "run", tmp_path, "-o", out, flag, value)
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error:") and setting in lines[0] and value in lines[0]
    assert "Traceback" not in stderr
    assert not out.exists()


def test_run_help_mentions_every_flag(capsys):
    with pytest.raises(SystemExit) as info:
        main(["run", "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--output", "--style-weight", "--resolution", "--format", "--quality", "--device", "--model",
                 "--overwrite", "--max-pixels"):
        assert flag in text, flag


def test_max_pixels(capsys, photos, tmp_path):
    out = tmp_path / "out"
    code, stdout, stderr = run_cli(capsys, "run", photos[0], "-o", out, "--max-pixels", "1000", *SMALL)
    assert code == 1
    line = [line for line in stderr.splitlines() if photos[0].name in line]
    assert len(line) == 1 and "pixel limit" in line[0] and "1,000" in line[0]
    assert "1 failed" in stdout
    assert not out.exists() or list(out.iterdir()) == []


def test_missing_input_is_reported(capsys, photos, tmp_path):
    missing = tmp_path / "nope.jpg"
    out = tmp_path / "out"
    code, stdout, stderr = run_cli(capsys, "run", photos[0], missing, "-o", out, *SMALL)
    assert code == 1
    assert "nope.jpg" in stderr
    assert "1 done" in stdout and "1 failed" in stdout


# --------------------------------------------------------------------------- models, doctor


def test_models_list_shows_licence(capsys, models_dir):
    code, stdout, _ = run_cli(capsys, "models", "list")
    assert code == 0
    lines = stdout.splitlines()
    row = next(i for i, line in enumerate(lines) if line.startswith("whitebox"))
    assert "CC BY-NC-SA" in lines[row]


def test_models_import_then_run(capsys, monkeypatch, tflite_file, shared_images, tmp_path):
    monkeypatch.setenv("CARTOONKIT_MODELS", str(tmp_path / "models"))
    code, stdout, stderr = run_cli(capsys, "models", "import", tflite_file, "--name", "copy",
                                   "--licence", "CC BY-NC-SA 4.0")
    assert code == 0, stderr
    assert "copy" in stdout
    code, stdout, _ = run_cli(capsys, "models", "list")
    assert any(line.startswith("copy") and "installed" in line for line in stdout.splitlines())

    src = tmp_path / "in" / PORTRAIT
    src.parent.mkdir()
    shutil.copy(shared_images / PORTRAIT, src)
    out = tmp_path / "out"
    code, stdout, stderr = run_cli(capsys, "run", src, "-o", out, "--model", "copy", "--device", "cpu", *SMALL)
    assert code == 0, stderr
    result = out / (src.stem + ".png")
    with Image.open(result) as im:
        assert im.size == expected_wh(src)
        array = np.asarray(im).astype(int)
    # it is really the cartoon network, not the photo: compare with the photo resized (style weight 0)
    code, _, _ = run_cli(capsys, "run", src, "-o", tmp_path / "photo", "--model", "copy", "--device", "cpu",
                         "--style-weight", "0", *SMALL)
    with Image.open(tmp_path / "photo" / (src.stem + ".png")) as im:
        assert np.abs(np.asarray(im).astype(int) - array).mean() > 3


def test_models_import_of_non_tflite(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("CARTOONKIT_MODELS", str(tmp_path / "models"))
    bogus = tmp_path / "weights.bin"
    bogus.write_bytes(b"\x00" * 64 + b"definitely not a flatbuffer")
    code, _, stderr = run_cli(capsys, "models", "import", bogus, "--name", "bogus")
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "weights.bin" in lines[0]
    assert "Traceback" not in stderr
    assert not (tmp_path / "models" / "bogus.json").exists()


def test_run_unknown_model_exit_2(capsys, photos, tmp_path):
    code, _, stderr = run_cli(capsys, "run", photos[0], "-o", tmp_path / "out", "--model", "nope", *SMALL)
    assert code == 2
    assert stderr.strip().splitlines()[-1].startswith("error:") and "nope" in stderr and "whitebox" in stderr


def test_doctor(capsys):
    code, stdout, _ = run_cli(capsys, "doctor")
    assert code == 0
    assert torch.__version__ in stdout


# --------------------------------------------------------------------------- the installed entry point


def test_console_script_runs(shared_images, tmp_path, models_dir):
    script = Path(sys.executable).with_name("cartoonkit")
    command = [str(script)] if script.is_file() else [sys.executable, "-m", "cartoonkit"]
    src = tmp_path / "in" / "faces.png"
    src.parent.mkdir()
    shutil.copy(shared_images / "bf_3faces.png", src)
    out = tmp_path / "out"
    env = {**os.environ, "CARTOONKIT_MODELS": str(models_dir)}
    proc = subprocess.run([*command, "run", str(src), "-o", str(out), "--resolution", "256", "--device", "cpu"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "1 done" in proc.stdout
    with Image.open(out / "faces.png") as im:
        assert im.format == "PNG" and im.size == (256, 256)



def test_batch_compile_needs_one_process(tmp_path, capsys):
    from cartoonkit.cli import main

    (tmp_path / "in").mkdir()
    for flag in (["--compile"], ["--precision", "int8"]):
        code = main(["batch", str(tmp_path / "in"), "-o", str(tmp_path / "out"), *flag, "--workers", "2"])
        assert code == 2
        assert "--precision int8 work with one process" in capsys.readouterr().err


def test_cuda_graphs_without_cuda_is_a_clear_error(tmp_path, capsys, shared_images, models_dir):
    from cartoonkit.cli import main

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    code = main(["run", str(shared_images / "wb_london1.jpg"), "-o", str(tmp_path), "--cuda-graphs"])
    err = capsys.readouterr().err
    assert code == 2 and err.strip() == "error: cuda_graphs=True: needs a CUDA device, the engine is on cpu"
    assert not any(tmp_path.iterdir())


def test_models_install_yunet(models_dir, capsys):
    from cartoonkit.cli import main
    from cartoonkit.weights import KNOWN_MODELS

    assert main(["models", "install", "yunet"]) == 0
    out = capsys.readouterr().out
    path = models_dir / KNOWN_MODELS["yunet"].filename
    assert out.strip() == f"face detector ready: {path} (YuNet, MIT licence)"
    code, stdout, _ = run_cli(capsys, "models", "list")               # the catalogue lists it too
    row = next(line for line in stdout.splitlines() if line.startswith("yunet"))
    assert code == 0 and "installed" in row and "not installed" not in row and "MIT" in row


def test_compiled_engines_get_the_coarse_bucket():
    from cartoonkit.cli import build_parser, engine_options_from_args
    from cartoonkit.options import COMPILED_BUCKET, bucket_shape

    def options(*flags):
        return engine_options_from_args(build_parser().parse_args(["run", "x.jpg", *flags]))

    assert options().padding == 4 and not options().compile
    assert options("--compile").padding == options("--precision", "int8").padding == COMPILED_BUCKET
    # at 1024 px, every portrait short side from 256 to 1024 lands in one of 12 compiled shapes: 64-pixel steps
    # up to 512, then the 7 rungs of the aspect-ratio ladder above 2:1
    shapes = {bucket_shape(1024, short, COMPILED_BUCKET) for short in range(256, 1025)}
    assert len(shapes) == 12


def test_export_onnx_prints_its_parity_check(capsys, tmp_path, models_dir):
    pytest.importorskip("onnxruntime")
    out = tmp_path / "deploy" / "cartoon.onnx"
    code, stdout, stderr = run_cli(capsys, "export", "-o", out, "--check-size", "64")
    assert code == 0, stderr
    assert out.is_file() and [p.name for p in out.parent.iterdir()] == ["cartoon.onnx"]
    parity = next(line for line in stdout.splitlines() if line.startswith("parity with PyTorch"))
    worst = float(parity.split("max abs difference ")[1].split()[0])
    assert worst < 1e-4  # float32 against float32: rounding only
    assert "fixed 1x3x64x64" in stdout


def test_export_that_fails_its_parity_check_leaves_no_file(capsys, tmp_path, models_dir, monkeypatch):
    pytest.importorskip("onnxruntime")
    from cartoonkit import export

    monkeypatch.setattr(export, "verify_onnx", lambda *args: 0.5)  # as if the runtime computed something else
    code, stdout, stderr = run_cli(capsys, "export", "-o", tmp_path / "m.onnx", "--check-size", "64")
    assert code == 1 and "was not written" in stderr
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(export, "verify_openvino", lambda *args: 0.5)
    code, _, stderr = run_cli(capsys, "export", "--format", "openvino", "-o", tmp_path / "m.xml", "--check-size", "64")
    try:
        import openvino  # noqa: F401
    except ImportError:
        assert code == 2 and "pip install 'cartoonkit[openvino]'" in stderr
    else:
        assert code == 1 and "was not written" in stderr
    assert list(tmp_path.iterdir()) == []


def test_export_openvino_writes_the_float32_ir_pair_and_prints_its_parity_check(capsys, tmp_path, models_dir):
    pytest.importorskip("openvino")
    pytest.importorskip("onnxruntime")
    out = tmp_path / "deploy" / "cartoon.xml"
    code, stdout, stderr = run_cli(capsys, "export", "--format", "openvino", "-o", out, "--check-size", "64")
    assert code == 0, stderr
    assert sorted(p.name for p in out.parent.iterdir()) == ["cartoon.bin", "cartoon.xml"]
    parity = next(line for line in stdout.splitlines() if line.startswith("parity with PyTorch"))
    assert "OpenVINO" in parity and float(parity.split("max abs difference ")[1].split()[0]) < 1e-4
    assert "OpenVINO IR with cartoon.bin" in stdout and "fixed 1x3x64x64" in stdout
    code, _, stderr = run_cli(capsys, "export", "--format", "openvino", "-o", tmp_path / "cartoon.onnx")
    assert code == 2 and "DIR/NAME.xml" in stderr
