"""The network on one core: cartoonkit against OpenVINO, in CPU time, so that other work on the machine does
not move the figures much.

    .venv/bin/python benchmarks/one_core.py                      # this checkout, every row
    .venv/bin/python benchmarks/one_core.py --tree ../old int8   # a worktree of another commit, some rows

Every runtime gets one thread (``torch.set_num_threads(1)``, OpenVINO ``INFERENCE_NUM_THREADS=1``) and is
timed with ``time.process_time`` (all threads of the process), median of ``--repeats``, rows interleaved.
That measures the work each one does on one core, not how it scales to more. PSNR is against the eager
float32 network on the same input. The int8 packages are compiled into a throw-away cache.
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
from pathlib import Path

ROWS = ("int8", "bf16-eager", "openvino-int8", "openvino-bf16")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("rows", nargs="*", help=f"some of {ROWS} (default: all)")
    parser.add_argument("--tree", type=Path, default=Path(__file__).resolve().parents[1],
                        help="the checkout whose cartoonkit is measured (default: this one)")
    parser.add_argument("--photo", type=Path,
                        default=Path(__file__).resolve().parents[2] / "shared" / "images" / "wb_actress2.jpg")
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    args.rows = args.rows or list(ROWS)
    if unknown := set(args.rows) - set(ROWS):
        parser.error(f"unknown rows {sorted(unknown)}; choose from {ROWS}")
    sys.path.insert(0, str(args.tree.resolve()))

    import numpy as np
    import torch

    from cartoonkit.bench.peers import NaivePipeline, OpenVinoRunner
    from cartoonkit.export import export_onnx
    from cartoonkit.weights import load_network

    torch.set_num_threads(1)
    network, _ = load_network("whitebox")
    network.eval()
    x = NaivePipeline(network).to_network(NaivePipeline.load_photo(args.photo, args.resolution))
    x = x[..., :x.shape[-2] // 4 * 4, :x.shape[-1] // 4 * 4].contiguous()
    channels_last = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        reference = network(x).numpy()

    runners = {}
    if "int8" in args.rows:
        from cartoonkit.compile_cache import CompiledCache
        from cartoonkit.quantize import Int8Network

        int8 = Int8Network(copy.deepcopy(network).to(memory_format=torch.channels_last), torch.bfloat16,
                           cache=CompiledCache(tempfile.mkdtemp(prefix="cartoonkit-one-core-")))
        runners["cartoonkit int8"] = lambda: int8(channels_last)
    if "bf16-eager" in args.rows:
        bf16 = copy.deepcopy(network)
        bf16.generator.to(torch.bfloat16)
        bf16 = bf16.to(memory_format=torch.channels_last)
        runners["cartoonkit bfloat16 eager"] = lambda: bf16(channels_last)
    openvino = [row for row in args.rows if row.startswith("openvino-")]
    if openvino:
        onnx = export_onnx(network, Path(tempfile.mkdtemp(prefix="cartoonkit-one-core-")) / "model.onnx")
        for row in openvino:
            runner = OpenVinoRunner(onnx, row.removeprefix("openvino-"), threads=1)
            runners[f"OpenVINO {row.removeprefix('openvino-')}"] = (lambda r=runner: r.run(x.numpy()))

    outputs, times = {}, {name: [] for name in runners}
    with torch.inference_mode():
        for name, run in runners.items():
            out = run()
            outputs[name] = out.numpy() if hasattr(out, "numpy") else out
            run()
        for _ in range(args.repeats):
            for name, run in runners.items():
                started = time.process_time()
                run()
                times[name].append(time.process_time() - started)

    def psnr(a: np.ndarray, b: np.ndarray) -> float:
        a, b = (np.clip(a, -1, 1) + 1) * 127.5, (np.clip(b, -1, 1) + 1) * 127.5
        return float(10 * np.log10(255 ** 2 / np.mean((a - b) ** 2)))

    print(f"{tuple(x.shape[-2:])} from {args.photo.name}, one thread, CPU time, median of {args.repeats}")
    for name, seconds in times.items():
        median_ms = sorted(seconds)[len(seconds) // 2] * 1e3
        print(f"{name:28s} {median_ms:8.1f} ms   PSNR {psnr(outputs[name], reference):5.1f} dB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
