"""The folder pipeline's targets (issue 22) measured in one run, printed as one table: what `gpu-check.sh` runs.

    python benchmarks/gpu_targets.py [--device cuda] [--photos 2000] [--resolution 1024] [--json PATH]
    python benchmarks/gpu_targets.py --device cpu --quick        # the plumbing on a machine without a GPU

Rows (each a fresh ``cartoonkit batch`` process where it says so; JPEG in, JPEG out):

* ``folder, eager``: sustained images per second of ``cartoonkit batch`` on ``--photos`` JPEGs of mixed sizes
  and aspect ratios cut from the shared photos (long sides 800-2000 px), the report's done files over its wall
  time less its set-up (scan, plan, model load);
* ``folder, --compile``: the same with a compiled engine (its compile time is in the run, its inductor cache in
  a fresh ``$CARTOONKIT_CACHE``, so this is the cold case);
* ``network alone``: the same engine (default options) on the same bucket shapes, in batches of the folder's
  size, weighted by how many photos fell in each shape: the rate the folder is measured against;
* ``one photo``: warm ``Cartoonizer.cartoonize_file`` of one JPEG at ``--resolution`` (decode, network, encode,
  atomic write), median of 20;
* ``first output``: seconds from ``import torch`` done to the eager run's first output file.

The goals are the issue's, for one H200; on the CPU (``--quick``: 24 photos at 256 px) the table only shows that
every step runs.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LONG_SIDES = (800, 1024, 1280, 1600, 2000)
RATIOS = (1.0, 0.8, 0.75, 2 / 3, 0.5625)
COLD_START = r"""
import sys, time
import torch
print("torch-imported", time.time(), flush=True)
from cartoonkit.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _make_one(job: tuple[Path, Path, int, float, bool]) -> None:
    from PIL import Image

    source, target, long_side, ratio, portrait = job
    with Image.open(source) as image:
        image = image.convert("RGB")
    short = round(long_side * ratio)
    size = (short, long_side) if portrait else (long_side, short)
    image.resize(size, Image.Resampling.BILINEAR).save(target, quality=90)


def make_photos(folder: Path, count: int, scale: float) -> None:
    """``count`` JPEGs of mixed sizes and aspect ratios from the shared photos (in parallel: 2,000 take seconds)."""
    from cartoonkit.paths import shared_dir

    sources = sorted((shared_dir() / "images").glob("*.jpg"))
    folder.mkdir(parents=True)
    jobs = [(sources[i % len(sources)], folder / f"{i:05d}.jpg", max(16, round(LONG_SIDES[i % 5] * scale)),
             RATIOS[(i // 5) % 5], bool(i % 2)) for i in range(count)]
    with multiprocessing.Pool(min(16, os.cpu_count() or 1)) as pool:
        pool.map(_make_one, jobs, chunksize=16)


def folder_run(photos: Path, out: Path, device: str, resolution: int, *extra: str, cache: Path,
               timeout: float | None = None) -> dict:
    """One ``cartoonkit batch`` process; its report's figures, and when its first output appeared (``{"timed_out":
    seconds}`` if it ran longer than ``timeout``)."""
    env = {**os.environ, "CARTOONKIT_CACHE": str(cache), "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-c", COLD_START, "-q", "batch", str(photos), "-o", str(out), "--device", device,
               "--resolution", str(resolution), "--format", "jpg", *extra]
    first: dict[str, float] = {}

    def watch() -> None:  # the first output file: a visible name (temporary files start with a dot)
        while "at" not in first and not first.get("stop"):
            try:
                if any(not entry.name.startswith(".") and entry.name.endswith(".jpg") for entry in os.scandir(out)):
                    first["at"] = time.time()
            except FileNotFoundError:
                pass
            time.sleep(0.002)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    start = time.time()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    imported = float(process.stdout.readline().split()[1])
    try:
        _, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        return {"timed_out": timeout}
    finally:
        first["stop"] = 1
        watcher.join()
    if process.returncode != 0:
        raise RuntimeError(f"cartoonkit batch {' '.join(extra)} failed ({process.returncode}): {stderr[-2000:]}")
    report = json.loads((out / "cartoonkit-report.json").read_text())
    seconds = report["seconds"]
    run = seconds["wall"] - seconds["setup"]
    return {"done": report["counts"]["done"], "failed": report["counts"].get("failed", 0),
            "images_per_s": round(report["counts"]["done"] / run, 1), "run_s": round(run, 3),
            "setup_s": round(seconds["setup"], 3), "process_s": round(time.time() - start, 3),
            "first_output_after_torch_s": round(first["at"] - imported, 3) if "at" in first else None,
            "busy_s": {k: round(v, 3) for k, v in seconds.items() if k not in ("wall", "setup")},
            "batches": report.get("batches"), "gpu": report.get("gpu")}


def shape_mix(photos: Path, ck, resolution: int) -> dict[tuple[int, int], int]:
    """How many of the photos run at each bucket shape (sizes read from the headers, as the chain resizes)."""
    import torch
    from PIL import Image

    from cartoonkit.transforms import output_size

    mix: dict[tuple[int, int], int] = {}
    for path in sorted(photos.glob("*.jpg")):
        with Image.open(path) as image:
            width, height = image.size
        shape = ck.bucket_of(torch.empty(0, *output_size(height, width, resolution)))
        mix[shape] = mix.get(shape, 0) + 1
    return mix


def network_alone(ck, mix: dict[tuple[int, int], int], batch: int) -> dict:
    """Images per second of the engine alone on the folder's bucket shapes, weighted by the photos in each."""
    import torch

    from cartoonkit.timing import median_seconds

    total, per_shape = 0.0, {}
    for (height, width), count in mix.items():
        images = torch.randint(0, 256, (batch, 3, height, width), dtype=torch.uint8, device=ck.device)
        seconds = median_seconds(lambda images=images: ck.engine(images), repeats=5, device=ck.device,
                                 warmup=2) / batch
        per_shape[f"{height}x{width}"] = {"photos": count, "ms_per_image": round(seconds * 1000, 3)}
        total += seconds * count
    return {"images_per_s": round(sum(mix.values()) / total, 1), "shapes": per_shape}


def one_photo(ck, source: Path, resolution: int, out: Path, repeats: int) -> float:
    from cartoonkit import CartoonConfig

    config = CartoonConfig(resolution=resolution, format="jpg")
    for _ in range(3):
        ck.cartoonize_file(source, out, config)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        ck.cartoonize_file(source, out, config)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _compiled_ratio(compiled: dict | None, eager: dict) -> str:
    if compiled is None:
        return "skipped"
    if "timed_out" in compiled:
        return f"> {compiled['timed_out']:.0f} s"
    return f"{compiled['images_per_s'] / eager['images_per_s']:.2f}x"


def table(result: dict) -> str:
    eager, compiled, alone = result["folder_eager"], result.get("folder_compiled"), result["network_alone"]
    rows = [("folder, eager (img/s)", f"{eager['images_per_s']:.0f}", ">= 1000"),
            ("folder / network alone", f"{eager['images_per_s'] / alone['images_per_s']:.0%}", ">= 80 %"),
            ("network alone, same engine and shapes (img/s)", f"{alone['images_per_s']:.0f}", ""),
            ("folder, --compile / eager", _compiled_ratio(compiled, eager), ">= 1.00x"),
            ("one photo, warm (ms)", f"{result['one_photo_ms']:.1f}", "<= 15"),
            ("first output after import torch (s)", f"{eager['first_output_after_torch_s']}", "<= 3")]
    width = max(len(r[0]) for r in rows)
    lines = [f"{result['machine']}: {result['photos']} photos at {result['resolution']} px, JPEG in and out",
             f"| {'target':<{width}} | {'measured':>9} | {'goal':>9} |", f"|{'-' * (width + 2)}|{'-' * 11}|{'-' * 11}|"]
    lines += [f"| {name:<{width}} | {value:>9} | {goal:>9} |" for name, value, goal in rows]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--photos", type=int, default=2000)
    parser.add_argument("--resolution", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=None, help="default: cartoonkit's for the device")
    parser.add_argument("--no-compile", action="store_true", help="skip the --compile folder run")
    parser.add_argument("--compile-timeout", type=float, default=120.0,
                        help="seconds the --compile folder run may take (compiling every shape included)")
    parser.add_argument("--quick", action="store_true", help="24 photos at 256 px: the plumbing only")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.quick:
        args.photos, args.resolution = 24, 256
    scale = args.resolution / 1024

    from cartoonkit import Cartoonizer
    from cartoonkit.run_options import batch_size_for

    work = Path(tempfile.mkdtemp(prefix="cartoonkit-gpu-targets-"))
    batch = batch_size_for(args.batch_size, args.device.split(":")[0])
    extra = ("--batch-size", str(batch))
    make_photos(work / "in", args.photos, scale)
    result = {"device": args.device, "photos": args.photos, "resolution": args.resolution, "batch_size": batch}
    result["folder_eager"] = folder_run(work / "in", work / "eager", args.device, args.resolution, *extra,
                                        cache=work / "cache-eager")
    print("folder, eager:", json.dumps(result["folder_eager"]), flush=True)
    if not args.no_compile:
        result["folder_compiled"] = folder_run(work / "in", work / "compiled", args.device, args.resolution,
                                               *extra, "--compile", cache=work / "cache-compiled",
                                               timeout=args.compile_timeout)
        print("folder, --compile:", json.dumps(result["folder_compiled"]), flush=True)
    ck = Cartoonizer.from_pretrained(device=args.device)
    result["machine"] = (__import__("torch").cuda.get_device_name(ck.device) if ck.device.type == "cuda"
                         else __import__("cartoonkit.hardware", fromlist=["x"]).cpu_model_name())
    result["network_alone"] = network_alone(ck, shape_mix(work / "in", ck, args.resolution), batch)
    result["one_photo_ms"] = round(one_photo(ck, work / "in" / "00001.jpg", args.resolution, work / "one.jpg",
                                             5 if args.quick else 20) * 1000, 2)
    print(table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    import shutil

    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
