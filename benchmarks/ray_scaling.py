"""The Ray engine against the local one on the same folder, in one run: docs/scaling.md's figures.

    .venv/bin/python benchmarks/ray_scaling.py --copies 4 --resolution 512 --json benchmarks/ray-scaling-epyc.json

The folder is ``--copies`` copies of ../shared/images. Rows: the in-process stream (``--backend local``),
``--workers 2`` (two Ray actors on a Ray the run starts and stops itself, since the in-house pool was retired:
the wall time a ``--workers`` user sees), then Ray started once (its start-up timed on its own) and the Ray
engine with 1 and 2 actors. For each row: the wall time of ``run_folder``, the time to the first output (start-up: model
loading, actor creation), and the steady rate, from the outputs' modification times, first to last, so that the
start-up costs do not hide the per-image cost.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

from cartoonkit import CartoonConfig, paths
from cartoonkit.folder import run_folder
from cartoonkit.options import EngineOptions


def make_folder(root: Path, copies: int) -> int:
    images = sorted(p for p in (paths.shared_dir() / "images").iterdir() if p.suffix in (".jpg", ".png"))
    for copy in range(copies):
        (root / f"copy{copy}").mkdir(parents=True)
        for image in images:
            shutil.copy(image, root / f"copy{copy}" / image.name)
    return copies * len(images)


def measure(name: str, src: Path, out: Path, config: CartoonConfig, **kwargs) -> dict:
    start_wall = time.time()
    start = time.perf_counter()
    report = run_folder(src, out, config, progress=False, **kwargs)
    wall = time.perf_counter() - start
    times = sorted(p.stat().st_mtime for p in out.rglob("*.png") if not p.name.startswith("."))
    steady = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else None
    row = {"row": name, "done": report.done, "failed": len(report.failed), "wall_s": round(wall, 2),
           "first_output_s": round(times[0] - start_wall, 2) if times else None,
           "steady_img_per_s": round(steady, 3) if steady else None,
           "overall_img_per_s": round(report.done / wall, 3), "devices": report.devices}
    print(json.dumps(row), file=sys.stderr)
    return row


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--copies", type=int, default=4)
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    import ray

    config = CartoonConfig(resolution=args.resolution)
    options = EngineOptions(device="cpu", precision=args.precision)
    with tempfile.TemporaryDirectory(prefix="cartoonkit-ray-bench-") as tmp:
        src = Path(tmp) / "in"
        total = make_folder(src, args.copies)
        rows = [measure("local engine, 1 process", src, Path(tmp) / "local", config, engine_options=options),
                measure("--workers 2 (Ray started for the run)", src, Path(tmp) / "workers2", config,
                        engine_options=options, workers=2)]
        start = time.perf_counter()
        ray.init(num_cpus=os.cpu_count(), object_store_memory=128 * 1024**2, include_dashboard=False,
                 log_to_driver=False)
        ray_start = time.perf_counter() - start
        for actors in (1, 2):
            rows.append(measure(f"ray backend, {actors} actor(s)", src, Path(tmp) / f"ray{actors}", config,
                                engine_options=options, backend="ray", actors=actors))
        ray.shutdown()
    load = os.getloadavg()
    result = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(), "images": total,
              "resolution": args.resolution, "precision": args.precision, "ray_init_s": round(ray_start, 2),
              "load_average_after": [round(x, 2) for x in load], "rows": rows}
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
