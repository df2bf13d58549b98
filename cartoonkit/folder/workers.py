"""Where a folder run's processes come from: the one in this process, or one spawned process per device.

``workers`` > 1 (CPU) or several ``devices`` start one stream each (spawned, with its own warm model) on
interleaved slices of the files; their events come back on one queue and make one report. The rules for
which engines may run in several processes are checked here, where the processes are started, so the API
and the command line obey the same ones.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from .. import runtime
from ..config import CartoonConfig
from ..engine import resolve_device
from ..errors import CartoonkitError, ConfigError
from ..formats import ImageLimits
from ..options import EngineOptions
from ..pipeline import Cartoonizer
from .plan import Task
from .report import STAGES, FolderReport
from .state import Journal
from .stream import Stream

MAX_WORKERS = 64


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
        if workers != 1:
            raise ConfigError(f"workers={workers}: give either --devices (one process per device) or --workers")
        plan = [resolve_device(d) for d in devices]
    else:
        resolved = resolve_device(engine_options.device)
        if workers > 1 and resolved.type == "cuda":
            raise ConfigError(f"workers={workers}: --workers starts CPU processes; on CUDA one process per GPU is "
                              "fastest: use --devices cuda:0,cuda:1")
        plan = [resolved] * workers
    if len(plan) > 1 and (why := engine_options.resolved(plan[0].type, int8_ok=False).single_process):
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


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a spawned worker needs to build the same Cartoonizer and stream (picklable)."""

    index: int
    model: str
    head_model: str | None
    engine_options: EngineOptions
    limits: ImageLimits
    config: CartoonConfig
    batch_size: int
    io_threads: int
    threads: int
    journal: Path | None


def run_processes(tasks: list[Task], report: FolderReport, sink, *, model: str, head_model: str | None,
                  engine_options: EngineOptions, devices: list[torch.device], limits: ImageLimits,
                  config: CartoonConfig, batch_size: int, io_threads: int, journal: Path | None) -> None:
    """One spawned process per device, each with its own model, on interleaved slices of ``tasks``."""
    context = multiprocessing.get_context("spawn")
    events, stop = context.Queue(), context.Event()
    cpu_workers = sum(1 for d in devices if d.type == "cpu")
    cpu_threads = max(1, torch.get_num_threads() // max(1, cpu_workers))
    names = {t.name: t for t in tasks}
    processes = {}
    for index, device in enumerate(devices):
        chunk = tasks[index::len(devices)]
        if not chunk:
            continue
        threads = cpu_threads if device.type == "cpu" else max(1, (os.cpu_count() or 1) // len(devices))
        # Each worker gets its precision made concrete, without int8: compiled engines run in one process.
        options = replace(engine_options, device=str(device)).resolved(device.type, int8_ok=False)
        spec = WorkerSpec(index, model, head_model, options, limits, config, batch_size, io_threads, threads, journal)
        process = context.Process(target=_worker_main, args=(spec, chunk, events, stop, os.getpid()),
                                  name=f"cartoonkit-batch-{index}", daemon=True)
        process.start()
        processes[index] = process
    finished: set[int] = set()
    while len(finished) < len(processes):
        try:
            try:
                event = events.get(timeout=0.2)
            except queue.Empty:
                if all(p.exitcode is not None for p in processes.values()):
                    break  # every worker is gone and the queue is empty
                continue
            kind = event[0]
            if kind == "done":
                sink.done(names[event[1]])
            elif kind == "failed":
                sink.failed(names[event[1]], event[2])
            elif kind == "note":
                sink.note(names[event[1]], event[2])
            elif kind == "fatal":
                sink.fatal(event[1])
                stop.set()
            elif kind == "finished":
                _, index, seconds, batches, gpu, interrupted = event
                finished.add(index)
                report.merge(seconds, Counter(batches), Counter(gpu))
                report.interrupted = report.interrupted or interrupted
        except KeyboardInterrupt:
            report.interrupted = True
            stop.set()  # the workers finish what they are writing, then say so
    for index, process in processes.items():
        process.join(timeout=30)
        if process.is_alive():
            process.terminate()
            process.join()
        if index not in finished and report.stopped is None:
            report.stopped = f"the worker on {devices[index]} ended unexpectedly (exit code {process.exitcode})"


def _worker_main(spec: WorkerSpec, tasks: list[Task], events, stop, parent_pid: int) -> None:
    """Entry point of a spawned worker: its own model, its own stream, events to the parent."""
    sink = _QueueSink(events)
    seconds, batches, gpu, interrupted = dict.fromkeys(STAGES, 0.0), Counter(), Counter(), False
    device = spec.engine_options.device
    try:
        resolved = torch.device(device)
        runtime.configure_torch(resolved, threads=spec.threads)
        if resolved.type == "cuda":
            torch.cuda.set_device(resolved)
        cartoonizer = Cartoonizer.from_pretrained(spec.model, engine_options=spec.engine_options,
                                                  head_model=spec.head_model, limits=spec.limits)
        with Journal.open(spec.journal) as journal:
            stream = Stream(cartoonizer, spec.config, tasks, sink, batch_size=spec.batch_size,
                            io_threads=spec.io_threads, journal=journal, stop=stop, limits=spec.limits,
                            parent_pid=parent_pid)
            stream.run()
        seconds, batches, gpu, interrupted = stream.seconds, stream.batches, stream.gpu, stream.interrupted
    except KeyboardInterrupt:
        interrupted = True
    except CartoonkitError as exc:
        sink.fatal(f"worker on {device}: {exc}")
    except Exception as exc:  # a bug: say so rather than vanish
        sink.fatal(f"worker on {device}: unexpected {type(exc).__name__}: {exc}")
    finally:
        events.put(("finished", spec.index, seconds, dict(batches), dict(gpu), interrupted))


class _QueueSink:
    """Stream events -> the parent process (picklable tuples)."""

    def __init__(self, events):
        self.events = events

    def done(self, task: Task) -> None:
        self.events.put(("done", task.name))

    def failed(self, task: Task, reason: str) -> None:
        self.events.put(("failed", task.name, reason))

    def note(self, task: Task, note: str) -> None:
        self.events.put(("note", task.name, note))

    def fatal(self, reason: str) -> None:
        self.events.put(("fatal", reason))
