"""Start-up times of whole processes, median of N: what a user waits for before any work happens.

    .venv/bin/python benchmarks/startup.py [--repeats 5] [--json PATH]

Rows:
* ``python -c "import torch"``: the floor every command that runs the network pays;
* ``python -c "import cartoonkit"``: the package's import;
* ``cartoonkit --help`` and ``cartoonkit run --help``;
* ``cartoonkit run one.jpg``: to the first line the process prints, and to its exit (output written),
  at 512 px on ``../shared/images/wb_actress2.jpg``.
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
PHOTO = ROOT.parent / "shared" / "images" / "wb_actress2.jpg"
BIN = Path(sys.executable).parent


def _time(argv: list[str]) -> tuple[float, float]:
    """(seconds to the first byte on stdout or stderr, seconds to exit) of one process."""
    start = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT)
    first = process.stdout.read(1)
    first_at = time.perf_counter() - start
    process.stdout.read()
    if process.wait() != 0:
        raise SystemExit(f"{' '.join(argv)} failed")
    return (first_at if first else float("nan")), time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    cli = str(BIN / "cartoonkit")
    rows = {}
    with tempfile.TemporaryDirectory(prefix="cartoonkit-startup-") as tmp:
        commands = {
            "python -c 'import torch'": [sys.executable, "-c", "import torch"],
            "python -c 'import cartoonkit'": [sys.executable, "-c", "import cartoonkit"],
            "cartoonkit --help": [cli, "--help"],
            "cartoonkit run --help": [cli, "run", "--help"],
            "cartoonkit run one.jpg (512 px)": [cli, "run", str(PHOTO), "-o", tmp, "--overwrite",
                                               "--resolution", "512"],
        }
        for name, argv in commands.items():
            _time(argv)  # warm the page cache
            times = [_time(argv) for _ in range(args.repeats)]
            rows[name] = {"first_output_s": round(statistics.median(t[0] for t in times), 3),
                          "exit_s": round(statistics.median(t[1] for t in times), 3)}
            print(f"{name:<36} first output {rows[name]['first_output_s']:6.2f} s   exit {rows[name]['exit_s']:6.2f} s")
    if args.json:
        from cartoonkit.hardware import cpu_model_name

        Path(args.json).write_text(json.dumps({"machine": cpu_model_name(), "cores": os.cpu_count(),
                                               "repeats": args.repeats, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
