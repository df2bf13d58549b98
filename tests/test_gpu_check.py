"""``benchmarks/gpu-check.sh``, the one prepared script for a GPU machine, runs its plumbing on the CPU: every step
runs, it writes its seven files and prints the targets' tables (the figures themselves only mean something on a GPU).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_runs_its_plumbing_on_the_cpu(tmp_path, models_dir):
    env = {**os.environ, "GPU_CHECK_DEVICE": "cpu", "OUT": str(tmp_path / "out"), "PYTHON": sys.executable,
           "CARTOONKIT_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu-check.sh")], capture_output=True, text=True,
                          env=env, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["gpu-tests.log", "gpu.txt", "summary.txt", "targets.json",
                                                     "targets.log", "video.json", "video.log"]
    summary = (out / "summary.txt").read_text()
    assert "targets (exit 0)" in summary and "gpu tests (exit 0)" in summary and "video (exit 0)" in summary
    for row in ("folder, eager (img/s)", "folder / network alone", "one photo, warm (ms)",
                "first output after import torch (s)"):
        assert row in summary
    result = json.loads((out / "targets.json").read_text())
    assert result["folder_eager"]["done"] == result["photos"] == 24 and result["folder_eager"]["failed"] == 0
    assert result["folder_eager"]["first_output_after_torch_s"] > 0
    assert result["network_alone"]["images_per_s"] > 0 and result["one_photo_ms"] > 0
    assert sum(shape["photos"] for shape in result["network_alone"]["shapes"].values()) == 24
    video = json.loads((out / "video.json").read_text())
    assert [row["name"] for row in video["rows"]] == ["1024x576, smoothing on", "1024x576, --temporal 0",
                                                      "1920x1080, smoothing on", "3840x2160, smoothing on"]
    assert all(row["frames"] == 5 and row["fps"] > 0 for row in video["rows"])  # 0.2 s of the 25 fps clip
    assert video["live_fps"]["256"] > 0 and "| 3840x2160, smoothing on" in summary


def test_gpu_check_runs_only_the_steps_asked_for(tmp_path, models_dir):
    """GPU_CHECK_STEPS: a session runs its own issue's step and keeps device time for a rerun."""
    env = {**os.environ, "GPU_CHECK_DEVICE": "cpu", "OUT": str(tmp_path / "out"), "PYTHON": sys.executable,
           "CARTOONKIT_CACHE": str(tmp_path / "cache"), "GPU_CHECK_STEPS": "video"}
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu-check.sh")], capture_output=True, text=True,
                          env=env, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["gpu.txt", "summary.txt", "video.json", "video.log"]
    summary = (out / "summary.txt").read_text()
    assert "video (exit 0)" in summary and "targets" not in summary and "gpu tests" not in summary
