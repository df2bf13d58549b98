"""What keeping freed memory in the process (``runtime.keep_freed_memory``) is worth: the network at 512 and
1024 px, int8 and the bfloat16 default, with the setting and without it (``CARTOONKIT_KEEP_FREED_MEMORY=0``).

    .venv/bin/python benchmarks/freed_memory.py --json benchmarks/freed-memory-epyc.json

The setting is process-wide, so each row is its own process; the two settings alternate, twice each, so a
change in the machine's load hits both. Per row: the median of 12 calls after 3 warm-ups, and per call the
kernel (system) time and the minor page faults, from ``getrusage``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys

PROBE = r"""
import json, resource, statistics, sys, time
import torch
from cartoonkit.options import EngineOptions
from cartoonkit.pipeline import Cartoonizer
precision, size = sys.argv[1], int(sys.argv[2])
engine = Cartoonizer.from_pretrained("whitebox", engine_options=EngineOptions(device="cpu",
                                                                              precision=precision)).engine
photo = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
for _ in range(3):
    engine(photo)
times, before = [], resource.getrusage(resource.RUSAGE_SELF)
for _ in range(12):
    start = time.perf_counter()
    engine(photo)
    times.append((time.perf_counter() - start) * 1000)
after = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"ms": statistics.median(times), "system_ms_per_call": (after.ru_stime - before.ru_stime) / 12 * 1000,
                  "faults_per_call": (after.ru_minflt - before.ru_minflt) / 12}))
"""


def run(precision: str, size: int, keep: bool) -> dict:
    env = {**os.environ, "CARTOONKIT_KEEP_FREED_MEMORY": "1" if keep else "0"}
    proc = subprocess.run([sys.executable, "-c", PROBE, precision, str(size)], capture_output=True, text=True,
                          env=env, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precisions", nargs="+", default=["int8", "bfloat16"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[512, 1024])
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    rows = []
    for precision in args.precisions:
        for size in args.sizes:
            runs = {True: [], False: []}
            for keep in (False, True, False, True):
                runs[keep].append(run(precision, size, keep))
            row = {"precision": precision, "size": size}
            for keep, name in ((False, "default_malloc"), (True, "kept")):
                row[name] = {key: statistics.median(r[key] for r in runs[keep]) for key in runs[keep][0]}
            row["speedup"] = row["default_malloc"]["ms"] / row["kept"]["ms"]
            rows.append(row)
            print(f"{precision:9} {size:5}  default malloc {row['default_malloc']['ms']:7.1f} ms "
                  f"({row['default_malloc']['system_ms_per_call']:5.1f} ms kernel, "
                  f"{row['default_malloc']['faults_per_call']:6.0f} faults)  kept {row['kept']['ms']:7.1f} ms "
                  f"({row['kept']['system_ms_per_call']:5.1f} ms kernel, {row['kept']['faults_per_call']:6.0f} "
                  f"faults)  {row['speedup']:.2f}x", flush=True)
    if args.json:
        with open(args.json, "w") as file:
            json.dump({"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                       "load_average_after": os.getloadavg(), "rows": rows}, file, indent=2)


if __name__ == "__main__":
    main()
