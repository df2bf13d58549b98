"""Where a folder run's processes come from: the stream in this process, and the rules for more than one.

``workers`` > 1 (CPU) or several ``devices`` are one process each; those processes are Ray actors on this
machine (:mod:`.ray_backend`, through :func:`~cartoonkit.folder.run_folder`), the one code path for more than
one process. The in-house pool that spawned them here (its own event queue and report merging) is retired:
docs/scaling.md has the measurements. The rules for which engines may run in several processes are checked
here, so the API and the command line obey the same ones.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import torch

from ..config import CartoonConfig
from ..engine import resolve_device
from ..errors import ConfigError
from ..formats import ImageLimits
from ..options import EngineOptions
from ..pipeline import Cartoonizer
from .plan import Task
from .report import FolderReport
from .state import Journal
from .stream import Stream


def process_devices(engine_options: EngineOptions, devices: Sequence[str | torch.device] | None, workers: int,
                    cartoonizer: Cartoonizer | None) -> list[torch.device]:
    """One device per process of the run: the devices given, ``workers`` times the one device, or the
    device of the caller's warm ``cartoonizer`` (which runs in this process). Refuses what cannot work."""
    if cartoonizer is not None:
        if devices or workers != 1:
            raise ConfigError("cartoonizer=...: runs in this process; devices and workers need model and "
                              "engine_options instead")
        return [cartoonizer.device]
    if devices:
        plan = [resolve_device(d) for d in devices]
    else:
        resolved = resolve_device(engine_options.device)
        if workers > 1 and resolved.type == "cuda":
            raise ConfigError(f"workers={workers}: --workers starts CPU processes; on CUDA one process per GPU is "
                              "fastest: use --devices cuda:0,cuda:1")
        plan = [resolved] * workers
    if len(plan) > 1 and (why := engine_options.for_processes(plan[0].type).single_process):
        raise ConfigError(f"{why}; drop --workers/--devices")
    return plan


def run_here(tasks: list[Task], report: FolderReport, sink, cartoonizer: Cartoonizer, config: CartoonConfig, *,
             batch_size: int, io_threads: int, journal: Path | None, limits: ImageLimits) -> None:
    """The stream in this process, on the cartoonizer's device."""
    with Journal.open(journal) as journal_file:
        stream = Stream(cartoonizer, config, tasks, sink, batch_size=batch_size, io_threads=io_threads,
                        journal=journal_file, stop=threading.Event(), limits=limits)
        stream.run()
    report.merge(stream.seconds, stream.batches, stream.gpu)
    report.interrupted = report.interrupted or stream.interrupted
