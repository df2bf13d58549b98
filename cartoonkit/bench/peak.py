"""The machine's measured peak, the yardstick of a benchmark's rows: matrix-multiply rate and copy bandwidth.

Measured on the bench's device in the same run as the rows (not datasheet numbers), so a row's share of the peak
compares like with like on this machine, at its clocks, on this day:

* matrix multiply: ``a @ b`` on random square matrices of ``matmul_size`` for each precision the rows use: on CUDA
  float16, bfloat16 (where the card has it) and float32, the last with TF32 exactly when cuDNN runs the float32
  convolutions in TF32 (``torch.backends.cudnn.allow_tf32``, which the engine leaves at torch's default, on); on
  the CPU float32, bfloat16 (where the CPU has native bfloat16, the only CPUs whose rows use it) and int8
  (``torch._int_mm``, int8 x int8 -> int32, where this torch and CPU run it), at torch's current thread count;
* copy bandwidth: one tensor of ``copy_mb`` MiB copied into another on the device, counted as bytes read plus
  bytes written per second (the usual convention for a device-to-device copy).

Each figure is the median of ``repeats`` timed repeats after ``warmup`` untimed ones; on CUDA each repeat is
``inner`` back-to-back calls between two CUDA events, so launch gaps do not count. The default sizes take about a
second on a GPU and under two on a small CPU; tests pass tiny ones.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable

import torch

from .results import MachinePeak

__all__ = ["CPU_COPY_MB", "CPU_MATMUL_SIZE", "CUDA_COPY_MB", "CUDA_MATMUL_SIZE", "int_mm_works", "measure_peak",
           "peak_precisions"]

CUDA_MATMUL_SIZE = 8192  # 1.1 TFLOP per float16 product: ~1.4 ms on an H200, long enough to reach the clocks' rate
CUDA_COPY_MB = 1024
CPU_MATMUL_SIZE = 1024   # ~2 GFLOP per product: tens of ms on two cores, the whole measurement under 2 s
CPU_COPY_MB = 64         # well beyond the caches of the CPUs this runs on


def int_mm_works(device: torch.device) -> bool:
    """Whether ``torch._int_mm`` exists and runs on ``device`` (int8 x int8 -> int32)."""
    if not hasattr(torch, "_int_mm"):
        return False
    try:
        a = torch.ones(32, 32, dtype=torch.int8, device=device)
        return bool(torch._int_mm(a, a)[0, 0].item() == 32)
    except (RuntimeError, NotImplementedError):
        return False


def peak_precisions(device: torch.device) -> list[str]:
    """The precisions whose peak the rows on ``device`` need (see the module's docstring)."""
    if device.type == "cuda":
        bf16 = torch.cuda.is_bf16_supported() if hasattr(torch.cuda, "is_bf16_supported") else True
        return ["float16", *(["bfloat16"] if bf16 else []), "float32"]
    from ..hardware import cpu_supports_fast_bf16

    return ["float32", *(["bfloat16"] if cpu_supports_fast_bf16() else []),
            *(["int8"] if int_mm_works(device) else [])]


def _median_seconds(fn: Callable[[], object], device: torch.device, repeats: int, warmup: int, inner: int) -> float:
    """Median seconds of one ``fn()`` call: CUDA events around ``inner`` calls; on the CPU the wall clock."""
    for _ in range(warmup):
        fn()
    times = []
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        for _ in range(repeats):
            start.record()
            for _ in range(inner):
                fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1e3 / inner)
    else:
        for _ in range(repeats):
            begin = time.perf_counter()
            for _ in range(inner):
                fn()
            times.append((time.perf_counter() - begin) / inner)
    return statistics.median(times)


def _cudnn_tf32() -> bool:
    """Whether cuDNN's float32 convolutions may use TF32 (torch's default: yes). The per-operation setting of newer
    torch (``torch.backends.cudnn.conv.fp32_precision``) when it is explicit, else the older ``allow_tf32``."""
    conv = getattr(getattr(torch.backends.cudnn, "conv", None), "fp32_precision", None)
    if conv in ("tf32", "ieee"):
        return conv == "tf32"
    try:
        return bool(torch.backends.cudnn.allow_tf32)
    except (AttributeError, RuntimeError):  # torch refuses to read a setting made through both of its APIs
        return True


def _matmul_operands(precision: str, n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator(device="cpu").manual_seed(0)
    if precision == "int8":
        a, b = (torch.randint(-64, 64, (n, n), dtype=torch.int8, generator=generator) for _ in range(2))
    else:
        a, b = (torch.randn(n, n, generator=generator).to(getattr(torch, precision)) for _ in range(2))
    return a.to(device), b.to(device)


def _matmul_tflops(precision: str, n: int, device: torch.device, repeats: int, warmup: int, inner: int) -> float:
    a, b = _matmul_operands(precision, n, device)
    out = torch.empty(n, n, dtype=torch.int32 if precision == "int8" else a.dtype, device=device)
    if precision == "int8":
        def product():
            out.copy_(torch._int_mm(a, b))  # no out= form on every torch; the copy is n² against n³ of work
    else:
        def product():
            torch.matmul(a, b, out=out)
    with torch.inference_mode():
        seconds = _median_seconds(product, device, repeats, warmup, inner)
    return 2 * n ** 3 / seconds / 1e12 if seconds > 0 else math.nan


def _copy_gb_per_s(mb: float, device: torch.device, repeats: int, warmup: int, inner: int) -> float:
    nbytes = int(mb * 2 ** 20)
    src = torch.ones(nbytes, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    seconds = _median_seconds(lambda: dst.copy_(src), device, repeats, warmup, inner)
    return 2 * nbytes / seconds / 1e9 if seconds > 0 else math.nan


def measure_peak(device: torch.device | str = "cpu", *, precisions: list[str] | None = None,
                 matmul_size: int | None = None, copy_mb: float | None = None, repeats: int = 5, warmup: int = 1,
                 inner: int | None = None) -> MachinePeak:
    """The matmul rate of each of ``precisions`` (default :func:`peak_precisions`) and the copy bandwidth on
    ``device``. Sizes default to :data:`CUDA_MATMUL_SIZE`/:data:`CUDA_COPY_MB` on CUDA and
    :data:`CPU_MATMUL_SIZE`/:data:`CPU_COPY_MB` on the CPU; ``inner`` (calls per timed repeat) to 10 on CUDA, 1 on
    the CPU. A precision the device cannot multiply in is left out (int8 without a working ``torch._int_mm``). On
    CUDA the float32 product follows cuDNN's TF32 setting for the duration, and the cached blocks are freed after."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    cuda = device.type == "cuda"
    n = matmul_size or (CUDA_MATMUL_SIZE if cuda else CPU_MATMUL_SIZE)
    mb = copy_mb or (CUDA_COPY_MB if cuda else CPU_COPY_MB)
    inner = inner or (10 if cuda else 1)
    tf32 = _cudnn_tf32() if cuda else None
    started = time.perf_counter()
    rates: dict[str, float] = {}
    saved = torch.get_float32_matmul_precision()  # the one API to set TF32 that torch 2.11 to 2.14 all accept
    try:
        if cuda:  # float32 products in TF32 exactly when cuDNN runs the float32 convolutions in TF32
            torch.set_float32_matmul_precision("high" if tf32 else "highest")
        for precision in precisions if precisions is not None else peak_precisions(device):
            if precision == "int8" and not int_mm_works(device):
                continue
            rate = _matmul_tflops(precision, n, device, repeats, warmup, inner)
            if math.isfinite(rate) and rate > 0:
                rates[precision] = rate
        copy = _copy_gb_per_s(mb, device, repeats, warmup, inner)
    finally:
        if cuda:
            torch.set_float32_matmul_precision(saved)
            torch.cuda.empty_cache()  # the rows' PeakMemory and later runs start from what they had
    return MachinePeak(device=device.type, matmul_tflops=rates,
                       copy_gb_per_s=copy if math.isfinite(copy) and copy > 0 else None, matmul_size=n, copy_mb=mb,
                       repeats=repeats, threads=None if cuda else torch.get_num_threads(), float32_tf32=tf32,
                       seconds=time.perf_counter() - started)
