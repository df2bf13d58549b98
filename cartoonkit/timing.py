"""Timing helpers shared by the pipeline, the folder runner, the benchmark and the analysis modules.

On CUDA, work is asynchronous: a stage is only over once the device has finished it, so every helper
here takes the device and synchronises it before reading the clock.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch


def synchronize(device: torch.device | None) -> None:
    """Wait for ``device``'s queued work (CUDA only; a no-op elsewhere)."""
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)


@contextmanager
def timed(timings: dict[str, float], stage: str, device: torch.device | None = None) -> Iterator[None]:
    """Add the seconds the block takes to ``timings[stage]`` (after synchronising ``device``)."""
    start = time.perf_counter()
    yield
    synchronize(device)
    timings[stage] = timings.get(stage, 0.0) + time.perf_counter() - start


def median_seconds(fn: Callable[[], object], repeats: int, device: torch.device, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls, after ``warmup`` untimed ones."""
    for _ in range(warmup):  # first-call allocations, kernel selection, compilation
        fn()
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)
