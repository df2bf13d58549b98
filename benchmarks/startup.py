"""Start-up times of whole processes, median of N: what a user waits for before any work happens.

    .venv/bin/python benchmarks/startup.py [--repeats 5] [--json PATH] [--tree DIR]

``--tree DIR`` measures the package of another checkout (``git worktree add DIR <commit>``) with this
venv, through ``python -m cartoonkit`` with ``PYTHONPATH=DIR``: before and after a change, in one session.

Rows:
* ``python -c "import torch"``: the floor every command that runs the network pays;
* ``python -c "import cartoonkit"``: the package's import;
* ``cartoonkit --help`` and ``cartoonkit run --help``;
* ``cartoonkit run one.jpg``: to the first line the process prints, and to its exit (output written),
  at 512 px and at 1024 px on ``../shared/images/wb_actress2.jpg``, with the default precision and with
  ``--precision int8`` (its compiled package in a private cache, built by the untimed first run: what a
  second run meets).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = tempfile.mkdtemp(prefix="cartoonkit-startup-cache-")  # int8 packages of this measurement only
PHOTO = ROOT.parent / "shared" / "images" / "wb_actress2.jpg"


def _time(argv: list[str], tree: Path) -> tuple[float, float]:
    """(seconds to the first byte on stdout or stderr, seconds to exit) of one process."""
    env = {**os.environ, "PYTHONPATH": str(tree), "CARTOONKIT_MODELS": str(ROOT / "models"),
           "CARTOONKIT_CACHE": CACHE}
    start = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=tree, env=env)
    first = process.stdout.read(1)
    first_at = time.perf_counter() - start
    process.stdout.read()
    if process.wait() != 0:
        raise SystemExit(f"{' '.join(argv)} failed")
    return (first_at if first else None), time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", default=None)
    parser.add_argument("--tree", default=str(ROOT), help="checkout whose package is measured (default: this one)")
    parser.add_argument("--only", nargs="+", default=None, help="only the rows whose name contains one of these")
    args = parser.parse_args()
    tree = Path(args.tree).resolve()
    cli = [sys.executable, "-m", "cartoonkit"]
    rows = {}
    with tempfile.TemporaryDirectory(prefix="cartoonkit-startup-") as tmp:
        commands = {
            "python -c 'import torch'": [sys.executable, "-c", "import torch"],
            "python -c 'import cartoonkit'": [sys.executable, "-c", "import cartoonkit"],
            "cartoonkit --help": [*cli, "--help"],
            "cartoonkit run --help": [*cli, "run", "--help"],
            "cartoonkit run one.jpg (512 px)": [*cli, "run", str(PHOTO), "-o", tmp, "--overwrite",
                                               "--resolution", "512"],
            "cartoonkit run one.jpg (1024 px)": [*cli, "run", str(PHOTO), "-o", tmp, "--overwrite"],
            "cartoonkit run one.jpg --precision int8 (1024 px, cached)": [
                *cli, "run", str(PHOTO), "-o", tmp, "--overwrite", "--precision", "int8"],
        }
        for name, argv in commands.items():
            if args.only and not any(word in name for word in args.only):
                continue
            _time(argv, tree)  # warm the page cache (and, for int8, build the package)
            times = [_time(argv, tree) for _ in range(args.repeats)]
            firsts = [t[0] for t in times if t[0] is not None]  # None: the command prints nothing
            rows[name] = {"first_output_s": round(statistics.median(firsts), 3) if firsts else None,
                          "exit_s": round(statistics.median(t[1] for t in times), 3)}
            first = f"{rows[name]['first_output_s']:6.2f} s" if firsts else "     -  "
            print(f"{name:<36} first output {first}   exit {rows[name]['exit_s']:6.2f} s")
    if args.json:
        from cartoonkit.hardware import cpu_model_name

        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=tree, capture_output=True,
                                text=True).stdout.strip()
        Path(args.json).write_text(json.dumps({"machine": cpu_model_name(), "cores": os.cpu_count(), "commit": commit,
                                               "repeats": args.repeats, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
