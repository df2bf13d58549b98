"""The video targets of issue 24 measured in one run, printed as one table: what `gpu-check.sh` runs after the
folder's targets.

    python benchmarks/gpu_video.py [--device cuda] [--end 3] [--json PATH]
    python benchmarks/gpu_video.py --device cpu --quick      # the plumbing on a machine without a GPU

Rows: ``cartoonize_video`` of the first ``--end`` seconds of the shared clip ``videos/dct_input.mp4`` (1280x720,
25 fps; ``$CARTOONKIT_SHARED`` or ``../shared``) with one warm Cartoonizer, each after an untimed warm-up on the
clip's first 0.64 s (two batches: cuDNN picks its kernels per shape, the encoder starts): 1024x576 smoothing on
(the default), 1024x576 ``--temporal 0``, 1920x1080 smoothing on (the chain upscales: ``--resolution 1920``),
3840x2160 smoothing on. Each row gives fps end to end (the summary's: opening the clip to the renamed file) and ms
per frame by stage (the stages overlap). Then the Live view's frames per second on the same device
(``benchmarks/live_fps.py``).

On the CPU (``--quick``) every row runs at 256 px on 0.2 s of the clip, with the device run forced onto the CPU
(``cartoonkit.video.device_run.FORCE_ENV``), so the GPU path's plumbing is what runs; the figures mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

# (row, --resolution, --temporal, fps before the device run (issue 24, H200, the CPU run on CUDA), goal in fps)
ROWS = (("1024x576, smoothing on", 1024, 0.8, "22.3", ""),
        ("1024x576, --temporal 0", 1024, 0.0, "32.8", ""),
        ("1920x1080, smoothing on", 1920, 0.8, "8.2", ">= 120"),
        ("3840x2160, smoothing on", 3840, 0.8, "", ">= 30"))
WARM_UP_S = 0.64  # two batches of 8 frames at 25 fps
LIVE_RESOLUTIONS = (256, 512, 1024)


def run_row(cartoonizer, clip: Path, out: Path, resolution: int, temporal: float, end: float, warm_up: float) -> dict:
    from cartoonkit import CartoonConfig
    from cartoonkit.video import cartoonize_video

    config = CartoonConfig(resolution=resolution)
    if warm_up > 0:
        cartoonize_video(clip, out, config, cartoonizer=cartoonizer, temporal=temporal, end=warm_up)
    summary = cartoonize_video(clip, out, config, cartoonizer=cartoonizer, temporal=temporal, end=end)
    return {"frames": summary.frames, "size": f"{summary.width}x{summary.height}", "fps": round(summary.fps, 2),
            "seconds": round(summary.seconds, 3), "cuts": summary.cuts,
            "ms_per_frame": {stage: round(summary.per_frame_ms(stage), 2) for stage in summary.stages}}


def table(result: dict) -> str:
    rows = [(row["name"], row["size"], f"{row['fps']:.1f}",
             ", ".join(f"{stage} {ms:.1f}" for stage, ms in row["ms_per_frame"].items()), row["before"], row["goal"])
            for row in result["rows"]]
    live = result["live_fps"]
    rows.append((f"live view, {result['device']}", "640x480 in", " / ".join(f"{fps:.1f}" for fps in live.values()),
                 f"at {' / '.join(str(r) for r in live)} px", "", ""))
    header = ("row", "written", "fps", "ms per frame by stage (they overlap)", "before (H200)", "goal (fps)")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [f"{result['machine']}: {result['clip']}, first {result['end_s']:g} s, batch {result['batch_size']}, "
             f"precision {result['precision']}"]
    lines.append("| " + " | ".join(f"{h:<{w}}" for h, w in zip(header, widths, strict=True)) + " |")
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    lines += ["| " + " | ".join(f"{c:<{w}}" for c, w in zip(row, widths, strict=True)) + " |" for row in rows]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--end", type=float, default=3.0, help="seconds of the clip each row cartoonizes")
    parser.add_argument("--quick", action="store_true", help="256 px, 0.2 s, no warm-up: the plumbing only")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    import torch
    from live_fps import measure  # benchmarks/live_fps.py

    from cartoonkit import Cartoonizer
    from cartoonkit.hardware import cpu_model_name
    from cartoonkit.paths import shared_dir
    from cartoonkit.run_options import batch_size_for
    from cartoonkit.video import device_run

    clip = shared_dir() / "videos" / "dct_input.mp4"
    if not clip.is_file():
        print(f"{clip}: not found (set CARTOONKIT_SHARED to the shared folder)", file=sys.stderr)
        return 2
    cartoonizer = Cartoonizer.from_pretrained(device=args.device)
    cuda = cartoonizer.device.type == "cuda"
    if not cuda:
        os.environ[device_run.FORCE_ENV] = "1"  # the GPU path's plumbing, on the CPU
    end, warm_up = (0.2, 0.0) if args.quick else (args.end, WARM_UP_S)
    result = {"machine": torch.cuda.get_device_name(cartoonizer.device) if cuda else cpu_model_name(),
              "device": str(cartoonizer.device), "precision": cartoonizer.engine.precision, "clip": clip.name,
              "end_s": end, "batch_size": batch_size_for(None, cartoonizer.device.type), "rows": []}
    work = Path(tempfile.mkdtemp(prefix="cartoonkit-gpu-video-"))
    try:
        for name, resolution, temporal, before, goal in ROWS:
            row = run_row(cartoonizer, clip, work / "out.mp4", 256 if args.quick else resolution, temporal, end,
                          warm_up)
            result["rows"].append({"name": name, "before": before, "goal": goal, **row})
            print(f"{name}: {json.dumps(row)}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    live = measure(cartoonizer, [256] if args.quick else list(LIVE_RESOLUTIONS), 3 if args.quick else 30,
                   warm=1 if args.quick else 3)
    result["live_fps"] = {resolution: round(fps, 1) for resolution, fps in live.items()}
    print(table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
