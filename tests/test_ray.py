"""``cartoonkit batch --engine ray`` on a real local Ray cluster: the same bytes as the local engine, bad files in
the report, object storage read and written by the actors, an actor killed mid-run, a killed driver resumed, and
the error without the ``ray`` extra.

One small cluster (2 CPUs, a 128 MB object store, no dashboard) is shared by the module: starting Ray costs
10-20 s on a 2-core machine. Runs that pass no ``--address`` use it as the Ray this process started; the
killed-driver test starts its own Ray in a subprocess (the path a user without a cluster takes), and its resume
joins the shared cluster with ``--address``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from cli_helpers import image_files, run_cli, temporary_files

from cartoonkit import CartoonConfig, ConfigError
from cartoonkit.errors import MissingDependencyError
from cartoonkit.folder import REPORT_FILE, run_folder
from cartoonkit.options import EngineOptions

pytestmark = pytest.mark.slow

SMALL = ["--resolution", "256"]
CPU32 = ["--device", "cpu", "--precision", "float32"]
TIMEOUT_S = 300  # a hang fails the test instead of blocking CI
ACTOR_TITLE = "MapWorker(MapBatches(CartoonActor))"  # the process title Ray gives our pool's actors


@pytest.fixture(scope="module")
def ray_cluster(models_dir):
    """A local Ray cluster for the module. Started after the models are installed and CARTOONKIT_MODELS is set
    (conftest), so the workers Ray starts inherit that environment and find the same models."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, object_store_memory=128 * 1024**2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def photos(shared_images: Path, root: Path, copies: int = 1) -> int:
    """Every photo of ../shared/images under root/, nested, ``copies`` times; returns how many files."""
    names = sorted(p.name for p in shared_images.iterdir() if p.suffix in (".jpg", ".png"))
    count = 0
    for copy in range(copies):
        for i, name in enumerate(names):
            folder = root / f"copy{copy}" / ("" if i % 2 else "sub")
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copy(shared_images / name, folder / name)
            count += 1
    return count


def load_report(out: Path) -> dict:
    return json.loads((out / REPORT_FILE).read_text())


def actor_processes():
    import psutil

    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        if cmdline and cmdline[0].startswith(f"ray::{ACTOR_TITLE}"):
            found.append(process)
    return found


# --------------------------------------------------------------------------- same bytes, same report


@pytest.mark.parametrize("precision", ["float32", "auto"])
def test_outputs_are_the_bytes_of_the_local_engine(capsys, ray_cluster, shared_images, tmp_path, precision):
    src = tmp_path / "in"
    total = photos(shared_images, src)
    local, ray_out = tmp_path / "local", tmp_path / "ray"
    flags = ["--device", "cpu", "--precision", precision, *SMALL]
    code, _, stderr = run_cli(capsys, "-q", "batch", src, "-o", local, *flags)
    assert code == 0, stderr
    code, stdout, stderr = run_cli(capsys, "-q", "batch", src, "-o", ray_out, *flags, "--engine", "ray",
                                   "--actors", "1")
    assert code == 0, stderr
    assert f"{total} done, 0 skipped, 0 failed" in stdout
    assert len(image_files(ray_out)) == total
    assert image_files(ray_out) == image_files(local)
    report, reference = load_report(ray_out), load_report(local)
    assert report["devices"] == ["ray:cpu"] and report["workers"] == 1
    assert report["settings"] == reference["settings"]  # so --resume may switch engines
    assert report["account"] == reference["account"]
    assert sorted(d["file"] for d in report["done"]) == sorted(d["file"] for d in reference["done"])
    assert report["seconds"]["network"] > 0 and sum(report["batches"].values()) == total
    assert ray_cluster.is_initialized()  # a Ray this process started is left running


def test_bad_files_are_report_rows_with_the_local_engines_reasons(capsys, ray_cluster, shared_images, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(shared_images / "wb_mountain4.jpg", src / "portrait.jpg")
    shutil.copy(shared_images / "bf_3faces.png", src / "faces.png")
    (src / "empty.jpg").write_bytes(b"")
    (src / "text.jpg").write_bytes(b"this is not a photo\n" * 10)
    truncated = (shared_images / "wb_food16.jpg").read_bytes()
    (src / "truncated.jpg").write_bytes(truncated[: len(truncated) // 3])
    (src / "notes.txt").write_text("skipped by the planner")

    local, ray_out = tmp_path / "local", tmp_path / "ray"
    code, _, _ = run_cli(capsys, "-q", "batch", src, "-o", local, *CPU32, *SMALL)
    assert code == 1
    code, stdout, stderr = run_cli(capsys, "-q", "batch", src, "-o", ray_out, *CPU32, *SMALL, "--engine", "ray",
                                   "--actors", "2")
    assert code == 1, stderr  # some files failed; the run itself did not
    report, reference = load_report(ray_out), load_report(local)
    assert report["complete"] and report["counts"]["done"] == 2
    failed = {Path(f["file"]).name: f for f in report["failed"]}
    assert set(failed) == {"empty.jpg", "text.jpg", "truncated.jpg"}
    assert sorted(report["failed"], key=str) == sorted(reference["failed"], key=str)  # same reasons and kinds
    assert report["account"] == reference["account"]
    for name in failed:
        assert f"error: {src / name}: " in stderr  # said as it happened, naming the file
    assert image_files(ray_out) == image_files(local)


def test_workers_are_ray_actors_on_this_machine(capsys, ray_cluster, shared_images, tmp_path):
    """``--workers 2`` (the in-house pool once) is two Ray actors: the same bytes as one process."""
    src = tmp_path / "in"
    total = photos(shared_images, src)
    one, two = tmp_path / "one", tmp_path / "two"
    flags = ["--device", "cpu", *SMALL]
    assert run_cli(capsys, "-q", "batch", src, "-o", one, *flags)[0] == 0
    code, stdout, stderr = run_cli(capsys, "-q", "batch", src, "-o", two, *flags, "--workers", "2")
    assert code == 0, stderr
    assert f"{total} done" in stdout
    report = load_report(two)
    assert report["workers"] == 2 and report["devices"] == ["ray:cpu", "ray:cpu"] and report["backend"] == "ray"
    assert load_report(one)["backend"] == "local"
    assert report["settings"] == load_report(one)["settings"]
    assert image_files(two) == image_files(one)
    code, _, stderr = run_cli(capsys, "batch", src, "-o", tmp_path / "mixed", "--devices", "cpu,cuda:0", *SMALL)
    import torch

    assert code == 2 and ("give devices of one kind" if torch.cuda.is_available() else "CUDA is not available") \
        in stderr


# --------------------------------------------------------------------------- faults


def test_an_actor_killed_mid_run_is_replaced_and_nothing_is_lost_or_doubled(ray_cluster, shared_images, tmp_path,
                                                                           cartoonizer):
    src = tmp_path / "in"
    total = photos(shared_images, src, copies=2)
    options = EngineOptions(device="cpu", precision="float32")
    reference = tmp_path / "reference"
    assert run_folder(src, reference, CartoonConfig(resolution=256), engine_options=options,
                      progress=False).done == total

    out, result, errors = tmp_path / "out", {}, []

    def run() -> None:
        try:
            result["report"] = run_folder(src, out, CartoonConfig(resolution=256), backend="ray",
                                          engine_options=options, actors=2, progress=False)
        except Exception as exc:  # surfaced by the assertions below
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + TIMEOUT_S
    while thread.is_alive() and time.monotonic() < deadline and len(image_files(out) if out.exists() else {}) < 1:
        time.sleep(0.01)
    busy = []
    while not busy and thread.is_alive() and time.monotonic() < deadline:
        # An actor in the middle of a call (Ray titles it ...submit): killing it leaves files of that call undone.
        busy = [p for p in actor_processes() if p.cmdline()[0].endswith(".submit")]
        time.sleep(0.05)  # listing every process is not free on 2 cores
    assert busy, "no busy actor of the pool was found to kill"
    victim = busy[0]
    done_at_kill = len(image_files(out))
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(timeout=30)
    assert done_at_kill < total, "the run ended before an actor could be killed"

    thread.join(TIMEOUT_S)
    assert not thread.is_alive(), "the run did not finish after the kill"
    assert not errors, errors
    report = result["report"]
    assert report.complete, report.stopped
    assert report.done == total and not report.failed
    assert len({name for name, _ in report.done_files}) == total  # each file once, though its call ran twice
    assert image_files(out) == image_files(reference)  # nothing lost, nothing half-written, same bytes
    assert temporary_files(out) == []


@pytest.fixture
def small_disk(tmp_path):
    """A real 1 MB file system (tmpfs) to fill: needs the right to mount, which CI's root has; else skipped."""
    where = tmp_path / "small-disk"
    where.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(where)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def test_a_full_output_disk_stops_the_actors_and_resume_finishes(capsys, ray_cluster, shared_images, tmp_path,
                                                               small_disk):
    """The actors' writes hit a real full disk: the run stops with the reason, what landed is whole, nothing
    temporary is left, and with room again --resume does exactly the rest: the local engine's bytes."""
    from PIL import Image

    src = tmp_path / "in"
    total = photos(shared_images, src, copies=2)
    flags = [*CPU32, *SMALL]
    code, _, _ = run_cli(capsys, "-q", "batch", src, "-o", tmp_path / "local", *flags)
    assert code == 0
    reference = image_files(tmp_path / "local")
    out = small_disk / "out"
    report_file = tmp_path / "report.json"  # the report goes where there is room
    code, stdout, stderr = run_cli(capsys, "-q", "batch", src, "-o", out, *flags, "--engine", "ray", "--actors", "2",
                                   "--report", report_file)
    assert code == 2, stdout + stderr
    assert "No space left on device" in stderr and "--resume" in stderr
    report = json.loads(report_file.read_text())
    assert not report["complete"] and "No space left on device" in report["stopped"]
    landed = image_files(out)
    assert 0 < len(landed) < total and report["counts"]["not_processed"] == total - report["counts"]["done"]
    for name, data in landed.items():  # whole files only
        assert data == reference[name]
        with Image.open(out / name) as image:
            image.load()
    assert temporary_files(out) == []
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    code, stdout, stderr = run_cli(capsys, "-q", "batch", src, "-o", out, *flags, "--engine", "ray", "--actors", "2",
                                   "--resume")
    assert code == 0, stderr
    assert f"{total - len(landed)} done, {len(landed)} skipped" in stdout
    assert image_files(out) == reference and temporary_files(out) == []


def test_a_killed_driver_resumes_on_a_cluster(ray_cluster, shared_images, tmp_path, models_dir):
    src = tmp_path / "in"
    total = photos(shared_images, src, copies=2)
    env = {**os.environ, "CARTOONKIT_MODELS": str(models_dir)}
    command = [sys.executable, "-m", "cartoonkit", "-q", "batch", str(src), "-o", str(tmp_path / "out"), *CPU32,
               *SMALL, "--engine", "ray"]
    reference = tmp_path / "reference"
    assert run_folder(src, reference, CartoonConfig(resolution=256),
                      engine_options=EngineOptions(device="cpu", precision="float32"), progress=False).done == total

    out = tmp_path / "out"
    # No --address: the driver starts a Ray of its own, which goes with it when it is killed.
    driver = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + TIMEOUT_S
    while driver.poll() is None and time.monotonic() < deadline and len(
            image_files(out) if out.exists() else {}) < 2:
        time.sleep(0.01)
    driver.send_signal(signal.SIGKILL)
    stderr = driver.communicate()[1]
    assert driver.returncode == -signal.SIGKILL, f"the batch ended before it could be killed: {stderr}"
    done_before = len(image_files(out))
    assert 2 <= done_before < total

    address = ray_cluster.get_runtime_context().gcs_address
    finish = subprocess.run([*command, "--resume", "--address", address], env=env, capture_output=True, text=True,
                            timeout=TIMEOUT_S)
    assert finish.returncode == 0, finish.stderr
    report = load_report(out)
    assert report["resumed"] and report["complete"] and report["workers"] == 1 and not report["failed"]
    # The killed driver's one actor stops before its next write: at most the write in flight at the kill landed
    # after it (Ray alone let 4 more outputs through before its clean-up).
    assert done_before <= report["counts"]["skipped"] <= done_before + 1
    assert report["counts"]["done"] + report["counts"]["skipped"] == total
    assert image_files(out) == image_files(reference)
    assert temporary_files(out) == []


# --------------------------------------------------------------------------- settings and the missing extra


def test_without_the_extra_the_error_names_it(capsys, monkeypatch, tmp_path, shared_images):
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(shared_images / "wb_mountain4.jpg", src)
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError, as without the package
    monkeypatch.setitem(sys.modules, "ray.data", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'cartoonkit\[ray\]'"):
        run_folder(src, tmp_path / "api", backend="ray")
    code, stdout, stderr = run_cli(capsys, "batch", src, "-o", tmp_path / "cli", "--backend", "ray")
    assert code == 2
    assert stderr.strip() == ("error: --backend ray needs the optional package 'ray', which is not installed; "
                              "install it with: pip install 'cartoonkit[ray]'")
    assert not (tmp_path / "api").exists() and not (tmp_path / "cli").exists()  # refused before anything is made
    code, _, stderr = run_cli(capsys, "batch", src, "-o", tmp_path / "workers", "--device", "cpu", "--workers", "2")
    assert code == 2
    assert stderr.strip() == ("error: --workers/--devices (processes run as Ray actors) needs the optional package "
                              "'ray', which is not installed; install it with: pip install 'cartoonkit[ray]'")
    assert not (tmp_path / "workers").exists()


def test_ray_settings_are_refused_with_the_local_engine_and_the_reverse(capsys, tmp_path, shared_images):
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(shared_images / "wb_mountain4.jpg", src)
    code, _, stderr = run_cli(capsys, "batch", src, "-o", tmp_path / "a", "--actors", "2")
    assert code == 2 and "need backend='ray' (--backend ray)" in stderr
    code, _, stderr = run_cli(capsys, "batch", src, "-o", tmp_path / "b", "--backend", "ray", "--workers", "2")
    assert code == 2 and "instead of devices or workers" in stderr
    code, _, stderr = run_cli(capsys, "batch", src, "-o", tmp_path / "c", "--backend", "ray", "--actors", "0")
    assert code == 2 and "actors=0: out of range, allowed from 1 to 1024" in stderr
    with pytest.raises(ConfigError, match="instead of cartoonizer"):
        run_folder(src, tmp_path / "d", cartoonizer=object(), backend="ray")
    assert not any((tmp_path / name).exists() for name in "abcd")  # refused before anything was made


def test_object_storage_in_and_out_on_the_actors(capsys, ray_cluster, s3_store, shared_images, tmp_path):
    """The actors read and upload the objects themselves, from the URI in each task row (credentials and
    endpoint included): the same bytes as the local engine on local folders."""
    src = tmp_path / "in"
    total = photos(shared_images, src)
    (src / "text.jpg").write_bytes(b"this is not a photo\n" * 10)
    bucket = s3_store.bucket("ray-photos")
    for path in sorted(src.rglob("*")):
        if path.is_file():
            s3_store.put(f"{bucket}/in/{path.relative_to(src).as_posix()}", path.read_bytes())
    code, _, _ = run_cli(capsys, "-q", "batch", src, "-o", tmp_path / "local", *CPU32, *SMALL)
    assert code == 1
    code, stdout, stderr = run_cli(capsys, "-q", "batch", s3_store.url(f"{bucket}/in"), "-o",
                                   s3_store.url(f"{bucket}/out"), *CPU32, *SMALL, "--engine", "ray", "--actors", "2")
    assert code == 1, stderr
    assert f"{total} done, 0 skipped, 1 failed" in stdout
    assert f"error: s3://{bucket}/in/text.jpg: not an image" in stderr
    written = {k: v for k, v in s3_store.files(f"{bucket}/out").items()
               if not k.rsplit("/", 1)[-1].startswith(".") and k != REPORT_FILE}
    assert written == image_files(tmp_path / "local")
    report = json.loads(s3_store.get(f"{bucket}/out/{REPORT_FILE}"))
    assert report["devices"] == ["ray:cpu", "ray:cpu"] and report["complete"]


def test_an_address_nobody_answers_on_fails_at_once(tmp_path, shared_images, models_dir):
    pytest.importorskip("ray")
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(shared_images / "wb_mountain4.jpg", src)
    start = time.monotonic()
    # A subprocess: this process may hold the module's cluster, which a run here would use whatever the address.
    done = subprocess.run([sys.executable, "-m", "cartoonkit", "batch", str(src), "-o", str(tmp_path / "out"),
                           "--device", "cpu", "--engine", "ray", "--address", "127.0.0.1:9"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "error: --address 127.0.0.1:9: no Ray cluster answers there" in done.stderr
    assert time.monotonic() - start < 60  # not ray.init's minutes of retries
