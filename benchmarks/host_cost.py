"""The host's own cost per file of a folder run: ``cartoonkit batch --style-weight 0`` (no network) against plain
Pillow loops, on many small JPEGs, side by side in one run.

    .venv/bin/python benchmarks/host_cost.py [--files 2000] [--size 256] [--repeats 3] [--tree DIR ...]
                                             [--json PATH]

With style weight 0 the chain returns the resized photo, so what is left is the host's work per file: read,
decode, resize, encode, the atomic write and the journal. Rows, repeated in turn (the machine is shared and
noisy; compare within a run):

* ``pillow loop``: one thread, open, convert, save as JPEG (quality 95) into the output folder, no fsync;
* ``pillow loop + fsync``: the same, through a temporary file, ``fsync`` and rename per file (what a per-file
  durable write costs);
* ``cartoonkit batch`` of each ``--tree`` (default: this checkout): a fresh process, ``-q batch IN -o OUT
  --style-weight 0 --resolution SIZE --format jpg``; files per second over the run's own wall time (the report's
  ``wall`` minus ``setup``), and the process's start-up apart.

``--tree DIR`` measures another checkout's package with this venv (``git worktree add DIR <commit>``), so a
before and an after run in one session, alternating.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SHARED_IMAGES = ROOT.parent / "shared" / "images"


def make_inputs(folder: Path, count: int, size: int) -> None:
    """``count`` JPEGs with a long side of ``size``, cut from the shared photos at varied aspect ratios."""
    photos = [Image.open(p).convert("RGB") for p in sorted(SHARED_IMAGES.glob("*.jpg"))]
    folder.mkdir(parents=True)
    for index in range(count):
        photo = photos[index % len(photos)]
        ratio = (1.0, 0.75, 0.66, 0.5625)[index % 4]
        width, height = (size, round(size * ratio)) if index % 2 else (round(size * ratio), size)
        photo.resize((width, height), Image.Resampling.LANCZOS).save(folder / f"{index:05d}.jpg", quality=90)


def pillow_loop(src: Path, dst: Path, durable: bool) -> float:
    dst.mkdir()
    start = time.perf_counter()
    for path in sorted(src.iterdir()):
        with Image.open(path) as image:
            rgb = image.convert("RGB")
        target = dst / (path.stem + ".jpg")
        if not durable:
            rgb.save(target, format="JPEG", quality=95)
            continue
        temporary = dst / f".{target.name}.tmp"
        with open(temporary, "wb") as file:
            rgb.save(file, format="JPEG", quality=95)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, target)
    return time.perf_counter() - start


def cartoonkit_batch(tree: Path, src: Path, dst: Path, size: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree), "CARTOONKIT_MODELS": str(ROOT / "models")}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "cartoonkit", "-q", "batch", str(src), "-o", str(dst), "--style-weight",
                    "0", "--resolution", str(size), "--format", "jpg", "--device", "cpu"],
                   check=True, cwd=tree, env=env, stdout=subprocess.DEVNULL)
    process = time.perf_counter() - start
    report = json.loads((dst / "cartoonkit-report.json").read_text())
    seconds = report["seconds"]
    return {"process_s": process, "run_s": seconds["wall"] - seconds["setup"], "setup_s": seconds["setup"],
            "busy_s": {k: v for k, v in seconds.items() if k not in ("wall", "setup")},
            "done": report["counts"]["done"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tree", type=Path, action="append", default=None,
                        help="checkout whose package to measure (repeatable; default: this one)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    trees = args.tree or [ROOT]
    work = Path(tempfile.mkdtemp(prefix="cartoonkit-host-cost-"))
    try:
        src = work / "in"
        make_inputs(src, args.files, args.size)
        rows: dict[str, list] = {"pillow loop": [], "pillow loop + fsync": []}
        rows.update({f"cartoonkit batch ({tree})": [] for tree in trees})
        for repeat in range(args.repeats):
            for name in rows:
                out = work / f"out-{repeat}-{len(rows[name])}-{abs(hash(name))}"
                if name.startswith("pillow"):
                    rows[name].append({"run_s": pillow_loop(src, out, durable="fsync" in name)})
                else:
                    tree = Path(name[len("cartoonkit batch ("):-1])
                    rows[name].append(cartoonkit_batch(tree, src, out, args.size))
                shutil.rmtree(out)
                print(f"{name}: {args.files / rows[name][-1]['run_s']:.0f} files/s", flush=True)
        summary = {}
        for name, runs in rows.items():
            run_s = statistics.median(r["run_s"] for r in runs)
            summary[name] = {"files_per_s": round(args.files / run_s, 1), "run_s": round(run_s, 3)}
            if "process_s" in runs[0]:
                summary[name]["process_s"] = round(statistics.median(r["process_s"] for r in runs), 3)
                summary[name]["setup_s"] = round(statistics.median(r["setup_s"] for r in runs), 3)
                summary[name]["busy_s"] = {k: round(statistics.median(r["busy_s"][k] for r in runs), 3)
                                           for k in runs[0]["busy_s"]}
        from cartoonkit.hardware import cpu_model_name

        result = {"machine": cpu_model_name(), "cpus": os.cpu_count(), "python": platform.python_version(),
                  "files": args.files, "size": args.size, "repeats": args.repeats, "rows": summary,
                  "load_after": os.getloadavg()}
        print(json.dumps(result, indent=2))
        if args.json:
            args.json.write_text(json.dumps(result, indent=2) + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
