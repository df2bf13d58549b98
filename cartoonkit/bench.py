"""Benchmarks: ms per image for the network alone and end to end (JPEG file in, PNG file out).

Every row of one run is measured in the same process on the same photos, so rows compare with
each other; absolute times only mean something on a named, otherwise idle machine. Each engine
switch is its own variant, so the table shows what each optimisation buys.
"""

from __future__ import annotations

import json
import platform
import statistics
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from .config import CartoonConfig
from .engine import EngineOptions, resolve_device
from .hardware import cpu_flags
from .imageio import read_image
from .network import CartoonNetwork
from .pipeline import Cartoonizer
from .samples import sample_photos
from .timing import median_seconds  # noqa: F401 (re-exported for the analysis modules)
from .transforms import resize_long_side

# Named engine configurations, from the plain port (the first baseline) to the recommended one.
VARIANTS: dict[str, EngineOptions] = {
    "eager-fp32": EngineOptions(precision="float32", channels_last=False),
    "channels_last-fp32": EngineOptions(precision="float32"),
    "channels_last-reduced": EngineOptions(precision="auto"),
    "compiled-reduced": EngineOptions(precision="auto", compile=True),
    "compiled-int8": EngineOptions(precision="int8"),  # x86 CPUs only; int8 always compiles
}
DEFAULT_VARIANTS = ("eager-fp32", "channels_last-fp32", "channels_last-reduced")


@dataclass
class BenchRow:
    variant: str         # engine configuration, see VARIANTS
    name: str            # "model" or "end_to_end"
    resolution: int      # long side in pixels (model rows: square images)
    batch: int
    ms_per_image: float  # median over repeats
    images_per_second: float
    precision: str
    psnr_vs_fp32: float | None  # model rows: quality of this variant against eager float32
    repeats: int
    images: int
    flop_fraction: float | None = None  # achieved / peak, where the peak is known
    peak_memory_mb: float | None = None  # model rows: peak memory above the start of the row, see PeakMemory


def conv_flops(height: int, width: int) -> int:
    """Multiply-adds x 2 of every convolution at ``height x width`` (the guided filter is negligible).

    Counted with hooks on a small forward pass and scaled: every layer's cost is proportional to
    the pixel count, as long as the size is a multiple of 4.
    """
    network, total = CartoonNetwork(), [0]

    def hook(module, inputs, output):
        k = module.kernel_size[0] * module.kernel_size[1]
        total[0] += 2 * module.in_channels * module.out_channels * k * output.shape[-2] * output.shape[-1]

    for m in network.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.register_forward_hook(hook)
    with torch.inference_mode():
        network(torch.zeros(1, 3, 64, 64))
    return total[0] * (height * width) // (64 * 64)


def machine_description(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    flags = cpu_flags()
    features = ", ".join(f for f in ("avx512f", "avx512_bf16", "amx_bf16") if f in flags)
    return f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads ({features})"


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of two images on the [0, 255] scale, after clipping (what would be saved)."""
    mse = ((a.float().clamp(0, 255) - b.float().clamp(0, 255)) ** 2).mean().item()
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def square_photo(photo: torch.Tensor, size: int) -> torch.Tensor:
    """A real photo centre-cropped to a square and resized to ``size x size``."""
    h, w = photo.shape[-2:]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return resize_long_side(photo[:, top:top + side, left:left + side].contiguous(), size)


class PeakMemory:
    """Peak memory in MB that a block of code needs above what the process held when it started.

    CUDA: the largest ``torch.cuda.max_memory_allocated`` reached inside the block, minus the memory
    allocated at its start (tensors only: not the caching allocator's reserve, not the CUDA context).
    CPU: the process's peak resident set size (``VmHWM`` in ``/proc/self/status``, whose high-water
    mark is reset at the start by writing ``5`` to ``/proc/self/clear_refs``) minus the resident size at
    the start. Freed heap memory is first handed back to the system (glibc ``malloc_trim``) so that
    memory kept from earlier work is not reused unseen; what is counted is every page touched
    (activations, input, oneDNN scratch, libraries loaded on the first call), not just tensors.
    ``mb`` stays ``None`` where neither applies (other devices; a CPU without ``/proc``, i.e. not Linux).
    """

    def __init__(self, device: torch.device):
        self.device, self.mb = device, None

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self._start = torch.cuda.memory_allocated(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        elif self.device.type == "cpu":
            _malloc_trim()
            self._start = _resident_kb("VmRSS")
            try:
                Path("/proc/self/clear_refs").write_text("5")
            except OSError:
                self._start = None
        else:  # other accelerators: not measured
            self._start = None
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.mb = (torch.cuda.max_memory_allocated(self.device) - self._start) / 2 ** 20
        elif self._start is not None and (peak := _resident_kb("VmHWM")) is not None:
            self.mb = (peak - self._start) / 1024


def _malloc_trim() -> None:
    """Return the C heap's free memory to the system (glibc only; a no-op elsewhere)."""
    import ctypes
    import ctypes.util

    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _resident_kb(field: str) -> int | None:
    """``VmRSS`` (resident now) or ``VmHWM`` (peak resident) of this process in kB, ``None`` if unreadable."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def bench_model(cartoonizer: Cartoonizer, variant: str, photo: torch.Tensor, resolution: int, batch: int,
                repeats: int, reference: torch.Tensor | None) -> BenchRow:
    with PeakMemory(cartoonizer.device) as memory:  # input, warm-up and timed runs
        x = square_photo(photo, resolution)[None].expand(batch, -1, -1, -1).contiguous().to(cartoonizer.device)
        out = cartoonizer.engine(x[:1])
        seconds = median_seconds(lambda: cartoonizer.engine(x), repeats, cartoonizer.device) / batch
    quality = psnr(out, reference) if reference is not None else None
    return BenchRow(variant, "model", resolution, batch, seconds * 1e3, 1 / seconds,
                    str(cartoonizer.engine.dtype).removeprefix("torch."), quality, repeats, batch,
                    peak_memory_mb=memory.mb)


def model_grid(cartoonizer: Cartoonizer, resolutions: list[int], batch_sizes: list[int], repeats: int = 3,
               variant: str = "as given") -> dict:
    """Throughput and peak memory of one warm ``cartoonizer``'s network over resolutions x batch sizes.

    :func:`bench_model` rows on the first sample photo, without the float32 quality reference that
    :func:`run_benchmarks` loads (``psnr_vs_fp32`` is ``None``). Returns a result shaped like
    :func:`run_benchmarks`'s, so :func:`format_table` prints it.
    """
    files = sample_photos()[:1]
    photo = read_image(files[0]).rgb
    rows = [bench_model(cartoonizer, variant, photo, r, b, repeats, None) for r in resolutions for b in batch_sizes]
    return {"machine": machine_description(cartoonizer.device), "torch": torch.__version__,
            "photos": [f.name for f in files],
            "gflop_per_image": {str(r): round(conv_flops(r, r) / 1e9, 1) for r in resolutions},
            "checks": {}, "rows": [asdict(r) for r in rows], "compound": []}


def bench_end_to_end(cartoonizer: Cartoonizer, variant: str, files: list[Path], resolution: int,
                     repeats: int) -> BenchRow:
    """Decode, resize, network, blend, encode and atomic write for every file, one at a time."""
    config = CartoonConfig(resolution=resolution, format="png")
    with tempfile.TemporaryDirectory(prefix="cartoonkit-bench-") as tmp:
        def run_all():
            for i, f in enumerate(files):
                cartoonizer.cartoonize_file(f, Path(tmp) / f"{i}.png", config)

        seconds = median_seconds(run_all, repeats, cartoonizer.device) / len(files)
    return BenchRow(variant, "end_to_end", resolution, 1, seconds * 1e3, 1 / seconds,
                    str(cartoonizer.engine.dtype).removeprefix("torch."), None, repeats, len(files))


def bench_peers(model: str, photo: torch.Tensor, resolutions: list[int], repeats: int,
                references: dict[int, torch.Tensor], tflite_file: Path | None) -> tuple[list[BenchRow], dict]:
    """Model-alone rows for ONNX Runtime (our export, parity-checked) and the TFLite interpreter (224 only)."""
    from .export import export_onnx, verify_onnx
    from .peers import OnnxRuntimeRunner, TFLiteRunner
    from .transforms import network_to_rgb_float, rgb_uint8_to_network
    from .weights import load_network

    cpu = torch.device("cpu")
    network, _ = load_network(model)
    rows, checks = [], {}
    with tempfile.TemporaryDirectory(prefix="cartoonkit-onnx-") as tmp:
        onnx_path = export_onnx(network, Path(tmp) / "cartoon.onnx", dynamic=True)
        runner = OnnxRuntimeRunner(onnx_path)
        for resolution in resolutions:
            x = rgb_uint8_to_network(square_photo(photo, resolution)[None]).numpy()
            checks[f"onnx_max_abs_diff_{resolution}"] = verify_onnx(onnx_path, network, torch.from_numpy(x))
            seconds = median_seconds(lambda x=x: runner.run(x), repeats, cpu)
            out = network_to_rgb_float(torch.from_numpy(runner.run(x)))
            rows.append(BenchRow(runner.name, "model", resolution, 1, seconds * 1e3, 1 / seconds, "float32",
                                 psnr(out, references[resolution].cpu()), repeats, 1))
    if tflite_file is not None:
        tflite = TFLiteRunner(tflite_file)
        x = rgb_uint8_to_network(square_photo(photo, 224)[None]).permute(0, 2, 3, 1).contiguous().numpy()
        seconds = median_seconds(lambda: tflite.run(x), repeats, cpu)
        rows.append(BenchRow(tflite.name, "model", 224, 1, seconds * 1e3, 1 / seconds, "float32 (fp16 weights)",
                             None, repeats, 1))
    return rows, checks


def bench_batch_end_to_end(cartoonizer: Cartoonizer, variant: str, files: list[Path], resolution: int,
                           repeats: int) -> BenchRow:
    """``cartoonkit batch``: the pipelined folder path (overlapping read, decode, network, encode, write)."""
    import shutil

    from .batch import run_batch

    config = CartoonConfig(resolution=resolution, format="png")
    with tempfile.TemporaryDirectory(prefix="cartoonkit-bench-") as tmp:
        in_dir = Path(tmp) / "in"
        in_dir.mkdir()
        for i, f in enumerate(files):
            shutil.copyfile(f, in_dir / f"{i:03d}{f.suffix}")
        runs = iter(range(repeats + 1))

        def run_all():
            run_batch(in_dir, Path(tmp) / f"out{next(runs)}", config, cartoonizer=cartoonizer, progress=False,
                      echo=lambda _: None)

        seconds = median_seconds(run_all, repeats, cartoonizer.device) / len(files)
    return BenchRow(variant, "batch_end_to_end", resolution, 1, seconds * 1e3, 1 / seconds,
                    str(cartoonizer.engine.dtype).removeprefix("torch."), None, repeats, len(files))


def bench_compound(cartoonizer: Cartoonizer, photos: dict[str, Path], resolution: int, repeats: int) -> list[dict]:
    """Compound mode per photo (already decoded): ms in all, and the share of each stage."""
    rows = []
    for label, path in photos.items():
        decoded = read_image(path)
        config = CartoonConfig(resolution=resolution, mode="compound")
        cartoonizer.process(decoded, config)  # warm-up: detector and model loading
        runs = []
        for _ in range(repeats):
            result = cartoonizer.process(decoded, config)
            runs.append(result.timings)
        total = statistics.median(sum(t.values()) for t in runs)
        stages = {k: statistics.median(t.get(k, 0.0) for t in runs) for k in runs[0]}
        rows.append({"photo": path.name, "faces": label, "resolution": resolution,
                     "ms_per_photo": total * 1e3,
                     "share": {k: v / total for k, v in stages.items()}, "notes": list(result.notes)})
    return rows


def bench_naive_end_to_end(model: str, files: list[Path], resolution: int, repeats: int) -> BenchRow:
    """The pipeline as commonly deployed (PIL decode, float32 eager, batch 1, PIL encode), file in, file out."""
    from .peers import NaivePipeline

    naive = NaivePipeline.from_model(model)
    with tempfile.TemporaryDirectory(prefix="cartoonkit-bench-") as tmp:
        def run_all():
            for i, f in enumerate(files):
                naive.process_file(f, Path(tmp) / f"{i}.png", resolution)

        seconds = median_seconds(run_all, repeats, torch.device("cpu"), warmup=0) / len(files)
    return BenchRow(naive.name, "end_to_end", resolution, 1, seconds * 1e3, 1 / seconds, "float32", None,
                    repeats, len(files))


def run_benchmarks(resolutions: list[int], repeats: int = 5, device: str = "auto", model: str = "whitebox",
                   output: Path | None = None, images: str | None = None, variants: list[str] | None = None,
                   batch_sizes: list[int] | None = None, end_to_end: bool = True, peers: bool = False,
                   end_to_end_count: int | None = None, compound: dict[str, Path] | None = None,
                   print_table: bool = True) -> dict:
    files = sorted(Path(images).glob("*.jp*g")) if images else sample_photos()
    if end_to_end_count:  # e.g. "twenty 1024-pixel JPEGs": cycle through the photos we have
        files = [files[i % len(files)] for i in range(end_to_end_count)]
    photo = read_image(files[0]).rgb
    rows: list[BenchRow] = []
    # Eager float32 on the same device is the quality reference for every variant.
    reference = Cartoonizer(model=model, device=device, engine_options=VARIANTS["eager-fp32"])
    references = {r: reference.engine(square_photo(photo, r)[None].to(reference.device)) for r in resolutions}
    del reference
    for variant in variants or DEFAULT_VARIANTS:
        cartoonizer = Cartoonizer(model=model, device=device, engine_options=VARIANTS[variant])
        for resolution in resolutions:
            for batch in batch_sizes or [1]:
                rows.append(bench_model(cartoonizer, variant, photo, resolution, batch, repeats,
                                        references[resolution]))
            if end_to_end:
                rows.append(bench_end_to_end(cartoonizer, variant, files, resolution, max(1, repeats // 2)))
                rows.append(bench_batch_end_to_end(cartoonizer, variant, files, resolution, max(1, repeats // 2)))
    compound_rows = []
    if compound:
        cartoonizer = Cartoonizer(model=model, device=device, engine_options=VARIANTS[(variants or
                                                                                      DEFAULT_VARIANTS)[-1]])
        for resolution in resolutions:
            compound_rows += bench_compound(cartoonizer, compound, resolution, repeats)
    checks: dict = {}
    if peers:
        from .weights.registry import KNOWN_MODELS, find_local_source

        tflite = find_local_source(KNOWN_MODELS["whitebox"]) if model == "whitebox" else None
        peer_rows, checks = bench_peers(model, photo, resolutions, repeats, references, tflite)
        rows += peer_rows
        if end_to_end:
            rows += [bench_naive_end_to_end(model, files, r, max(1, repeats // 2)) for r in resolutions]
    result = {
        "machine": machine_description(resolve_device(device)),
        "torch": torch.__version__,
        "photos": [f.name for f in files],
        "gflop_per_image": {str(r): round(conv_flops(r, r) / 1e9, 1) for r in resolutions},
        "checks": checks,
        "rows": [asdict(r) for r in rows],
        "compound": compound_rows,
    }
    if print_table:
        print(format_table(result))
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(result, indent=2) + "\n")
    return result


def format_table(result: dict) -> str:
    lines = [f"machine: {result['machine']} | torch {result['torch']} | "
             f"GFLOP per square image: {result['gflop_per_image']}",
             f"photos: {', '.join(dict.fromkeys(result['photos']))} "
             f"({len(result['photos'])} files per end-to-end pass)",
             *(f"{k}: {v:.2e}" for k, v in result.get("checks", {}).items()), "",
             "| variant | what | resolution | batch | precision | ms / image | images / s | PSNR vs fp32 (dB) "
             "| peak memory (MB) |",
             "|---|---|---:|---:|---|---:|---:|---:|---:|"]
    for r in result["rows"]:
        quality = "" if r["psnr_vs_fp32"] is None else f"{r['psnr_vs_fp32']:.1f}"
        memory = "" if r.get("peak_memory_mb") is None else f"{r['peak_memory_mb']:.0f}"  # older JSON lacks it
        lines.append(f"| {r['variant']} | {r['name']} | {r['resolution']} | {r['batch']} | {r['precision']} | "
                     f"{r['ms_per_image']:.1f} | {r['images_per_second']:.2f} | {quality} | {memory} |")
    if result.get("compound"):
        lines += ["", "| compound mode | faces | resolution | ms / photo | detect | align | head network | paste |"
                      " background network |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
        for c in result["compound"]:
            share = {k: f"{100 * v:.1f} %" for k, v in c["share"].items()}
            lines.append(f"| {c['photo']} | {c['faces']} | {c['resolution']} | {c['ms_per_photo']:.1f} | "
                         f"{share.get('detect', '')} | {share.get('align', '')} | {share.get('head_network', '')} | "
                         f"{share.get('paste', '')} | {share.get('network', '')} |")
    return "\n".join(lines)
