"""Benchmarks: ms per image for the network alone and end to end (JPEG file in, PNG file out).

Every row of one run is measured in the same process on the same photos, so rows compare
with each other; absolute times only mean something on a named, otherwise idle machine.
"""

from __future__ import annotations

import json
import platform
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .config import CartoonConfig
from .hardware import cpu_flags
from .imageio import read_image
from .pipeline import Cartoonizer
from .samples import sample_photos
from .transforms import resize_long_side


@dataclass
class BenchRow:
    name: str            # "model" or "end_to_end"
    resolution: int      # long side in pixels
    ms_per_image: float  # median over repeats
    images_per_second: float
    repeats: int
    images: int


def machine_description(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    flags = cpu_flags()
    features = ", ".join(f for f in ("avx512f", "amx_bf16") if f in flags)
    return f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads ({features})"


def _median_seconds(fn, repeats: int, device: torch.device) -> float:
    fn()  # warm-up: first-call allocations and kernel selection
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_model(cartoonizer: Cartoonizer, photo: torch.Tensor, resolution: int, repeats: int) -> BenchRow:
    """The network alone on one photo already resized and on the device (uint8 in, float out)."""
    x = resize_long_side(photo, resolution)[None].to(cartoonizer.device)
    seconds = _median_seconds(lambda: cartoonizer.engine(x), repeats, cartoonizer.device)
    return BenchRow("model", resolution, seconds * 1e3, 1 / seconds, repeats, 1)


def bench_end_to_end(cartoonizer: Cartoonizer, files: list[Path], resolution: int, repeats: int) -> BenchRow:
    """Decode, resize, network, blend, encode and atomic write for every file, one at a time."""
    config = CartoonConfig(resolution=resolution, format="png")
    with tempfile.TemporaryDirectory(prefix="cartoonkit-bench-") as tmp:
        def run_all():
            for i, f in enumerate(files):
                cartoonizer.cartoonize_file(f, Path(tmp) / f"{i}.png", config)

        seconds = _median_seconds(run_all, repeats, cartoonizer.device) / len(files)
    return BenchRow("end_to_end", resolution, seconds * 1e3, 1 / seconds, repeats, len(files))


def run_benchmarks(resolutions: list[int], repeats: int = 5, device: str = "auto", model: str = "whitebox",
                   output: Path | None = None, images: str | None = None, print_table: bool = True) -> dict:
    cartoonizer = Cartoonizer(model=model, device=device)
    files = sorted(Path(images).glob("*.jp*g")) if images else sample_photos()
    photo = read_image(files[0]).rgb
    rows = []
    for resolution in resolutions:
        rows.append(bench_model(cartoonizer, photo, resolution, repeats))
        rows.append(bench_end_to_end(cartoonizer, files, resolution, max(1, repeats // 2)))
    result = {
        "machine": machine_description(cartoonizer.device),
        "device": str(cartoonizer.device),
        "torch": torch.__version__,
        "precision": str(cartoonizer.engine.dtype).removeprefix("torch."),
        "rows": [asdict(r) for r in rows],
    }
    if print_table:
        print(format_table(result))
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(result, indent=2) + "\n")
    return result


def format_table(result: dict) -> str:
    lines = [f"machine: {result['machine']} | device {result['device']} | torch {result['torch']} | "
             f"{result['precision']}", "",
             "| what | resolution | ms / image | images / s | images x repeats |",
             "|---|---:|---:|---:|---:|"]
    for r in result["rows"]:
        lines.append(f"| {r['name']} | {r['resolution']} | {r['ms_per_image']:.1f} | {r['images_per_second']:.2f} | "
                     f"{r['images']} x {r['repeats']} |")
    return "\n".join(lines)
