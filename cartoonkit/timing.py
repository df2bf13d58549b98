"""Timing helpers shared by the pipeline, the folder runner, the benchmark and the analysis modules.

On CUDA, work is asynchronous: a stage is only over once the device has finished it, so every helper
here takes the device and synchronises it before reading the clock, except inside :func:`host_time_only`,
where a pipeline that overlaps the device's work (the folder stream) times the device with CUDA events instead.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch


def synchronize(device: torch.device | None) -> None:
    """Wait for ``device``'s queued work (CUDA only; a no-op elsewhere)."""
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)


_host_only = threading.local()


@contextmanager
def host_time_only() -> Iterator[None]:
    """In this block (this thread only), :func:`timed` does not synchronise the device: stage timings are the
    host's time to queue the work. Why: one synchronisation per stage and per photo stalls the device between
    them and stops the next batch's work from being queued behind the current one."""
    before = getattr(_host_only, "on", False)
    _host_only.on = True
    try:
        yield
    finally:
        _host_only.on = before


@contextmanager
def timed(timings: dict[str, float], stage: str, device: torch.device | None = None) -> Iterator[None]:
    """Add the seconds the block takes to ``timings[stage]`` (after synchronising ``device``, unless inside
    :func:`host_time_only`)."""
    start = time.perf_counter()
    yield
    if not getattr(_host_only, "on", False):
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
