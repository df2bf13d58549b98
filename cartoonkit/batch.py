"""Folder processing: ``cartoonkit batch IN_DIR -o OUT_DIR``, pipelined, resumable, with a report.

One process per device runs three stages joined by bounded queues, so reading, decoding, the
network, encoding and writing overlap, and memory stays bounded whatever the size of the folder::

    readers (threads)  read the file; decode it with Pillow (on CUDA, plain JPEGs are left for
                       nvJPEG); on the CPU also resize ............................ -> ready queue
    engine (main)      on CUDA: decode the pulled JPEGs together with nvJPEG, copy the others
                       from pinned memory, resize on the GPU; group photos by bucket shape; run
                       each full group, and the fullest partial one whenever the ready queue runs
                       dry (never waiting for a batch to fill); blend; on CUDA encode JPEG
                       output with nvJPEG, copy the rest to pinned memory ......... -> write queue
    writers (threads)  encode (Pillow), write atomically, note the output in the journal

``workers`` > 1 (CPU) or several ``devices`` start one such process each (spawned, with its own
warm model) on interleaved slices of the files; their events come back on one queue and make
one report. In one process the engine is the caller's :class:`~cartoonkit.pipeline.Cartoonizer`
(or one made here), the same object that serves single photos.

Safety, whatever the folders hold:

* an output is ``OUT_DIR/<path relative to IN_DIR>`` with the format's extension; one that would
  land outside ``OUT_DIR`` (through a symbolic link inside it), on an input, or on the output of
  another input (``a.jpg`` and ``a.png``) is refused for that file. Symbolic links to folders are
  never followed (no loops, nothing outside ``IN_DIR``); links to files outside ``IN_DIR`` are
  skipped; hidden files and folders are ignored; an ``OUT_DIR`` inside ``IN_DIR`` is not input.
* Every output is written to a hidden temporary file and renamed, so a kill (even ``kill -9``)
  leaves whole files or none; the temporary files a killed run leaves are removed by the next.
* ``OUT_DIR/.cartoonkit-batch.json`` records the settings. A later run with other settings into
  the same folder is refused (``--overwrite`` starts over). Existing outputs are kept and skipped
  unless ``overwrite``; an interrupted ``overwrite`` run keeps a journal of the outputs it already
  replaced, so ``resume`` replaces exactly the rest. One batch at a time per ``OUT_DIR`` (a lock).
* A bad input is recorded with its reason and the batch carries on. An output folder that takes
  no more files (disk full, read-only, permission denied) stops the run cleanly, with the report
  written where possible; ``resume`` continues once that is fixed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import io
import json
import logging
import multiprocessing
import os
import queue
import re
import sys
import threading
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

import torch

from . import __version__
from .config import CartoonConfig
from .engine import EngineOptions, resolve_device, resolve_precision
from .errors import CartoonkitError, ConfigError, InvalidImageError, OutputError
from .fileio import write_atomic
from .imageio import (
    IMAGE_SUFFIXES,
    DecodedImage,
    ImageLimits,
    check_dimensions,
    encode_image,
    extension_for,
    read_image,
)
from .weights import DEFAULT_MODEL

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; one batch per folder is then up to the user
    fcntl = None

log = logging.getLogger(__name__)

STATE_FILE = ".cartoonkit-batch.json"
JOURNAL_FILE = ".cartoonkit-batch.journal"
LOCK_FILE = ".cartoonkit-batch.lock"
REPORT_FILE = "cartoonkit-report.json"
STAGES = ("read", "decode", "preprocess", "network", "postprocess", "encode", "write")
"""Stages timed in the report: busy seconds summed over threads and processes."""

# write_atomic's temporary files: "." + name + "." + mkstemp's 8 random characters + ".tmp"
_TEMPORARY = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")
# An output folder that fails with one of these will fail every following file too: stop.
_FATAL_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO,
                 getattr(errno, "EDQUOT", errno.ENOSPC)}
_MAX_WORKERS = 64


@dataclass(frozen=True)
class Task:
    """One input and where its output goes."""

    src: Path  # the input, as found under IN_DIR
    dst: Path  # its output under OUT_DIR
    key: str   # the output's path relative to OUT_DIR, POSIX style (the journal's key)

    @property
    def name(self) -> str:
        return str(self.src)


@dataclass
class BatchReport:
    """What a batch did: counts, every skipped and failed file with its reason, time per stage."""

    in_dir: Path
    out_dir: Path
    settings: dict[str, Any]
    devices: list[str]
    workers: int = 1
    batch_size: int = 1
    found: int = 0
    done: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)
    not_processed: int = 0
    stopped: str | None = None   # why the run stopped before the end (output folder full, ...)
    interrupted: bool = False    # Ctrl-C
    resumed: bool = False
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    setup_seconds: float = 0.0   # scanning, planning, loading the model
    wall_seconds: float = 0.0
    batches: Counter = field(default_factory=Counter)  # batch size -> how many engine calls
    gpu: Counter = field(default_factory=Counter)      # images decoded / encoded with nvJPEG
    started: str = ""
    finished: str = ""
    report_path: Path | None = None

    @property
    def images_per_second(self) -> float:
        return self.done / self.wall_seconds if self.wall_seconds > 0 else 0.0

    @property
    def complete(self) -> bool:
        """Every file was done, skipped or failed: nothing is left for ``--resume``."""
        return self.stopped is None and not self.interrupted and self.not_processed == 0

    def summary(self) -> str:
        rest = f", {self.not_processed} not processed" if self.not_processed else ""
        return (f"{self.done} done, {len(self.skipped)} skipped, {len(self.failed)} failed{rest} "
                f"in {self.wall_seconds:.1f} s ({self.images_per_second:.1f} img/s) -> {self.out_dir}")

    def to_json(self) -> dict[str, Any]:
        return {
            "cartoonkit": __version__,
            "input": str(self.in_dir),
            "output": str(self.out_dir),
            "settings": self.settings,
            "devices": self.devices,
            "workers": self.workers,
            "batch_size": self.batch_size,
            "resumed": self.resumed,
            "counts": {"found": self.found, "done": self.done, "skipped": len(self.skipped),
                       "failed": len(self.failed), "not_processed": self.not_processed},
            "complete": self.complete,
            "stopped": self.stopped,
            "interrupted": self.interrupted,
            "failed": [{"file": f, "reason": r} for f, r in self.failed],
            "skipped": [{"file": f, "reason": r} for f, r in self.skipped],
            "notes": [{"file": f, "note": n} for f, n in self.notes],
            "seconds": {**{k: round(v, 4) for k, v in self.seconds.items()},
                        "setup": round(self.setup_seconds, 4), "wall": round(self.wall_seconds, 4)},
            "seconds_note": "stage seconds are busy time summed over threads and processes; the stages "
                            "overlap, so together they can exceed the wall time",
            "images_per_second": round(self.images_per_second, 3),
            "batches": {str(k): v for k, v in sorted(self.batches.items())},
            "gpu": {"decoded": self.gpu["decoded"], "encoded": self.gpu["encoded"]},
            "started": self.started,
            "finished": self.finished,
        }


def run_batch(in_dir: str | os.PathLike, out_dir: str | os.PathLike, config: CartoonConfig = CartoonConfig(), *,
              cartoonizer=None, model: str = DEFAULT_MODEL, device: str | torch.device = "auto",
              devices: Sequence[str | torch.device] | None = None, precision: str = "auto",
              limits: ImageLimits | None = None, batch_size: int | None = None, workers: int = 1,
              io_threads: int | None = None, resume: bool = False, overwrite: bool = False,
              report_path: str | os.PathLike | None = None, progress: bool = True,
              echo: Callable[[str], None] | None = None) -> BatchReport:
    """Cartoonize every image under ``in_dir`` (recursively) into ``out_dir``, keeping the layout.

    ``cartoonizer``: a warm :class:`~cartoonkit.pipeline.Cartoonizer` to use (then ``model``,
    ``device``, ``precision`` come from it); otherwise one is made from those arguments.
    ``devices``: one process per device (``["cuda:0", "cuda:1"]``); ``workers``: that many CPU
    processes, the CPU threads divided between them. ``batch_size``: photos per engine call
    (default 8 on CUDA, 1 on the CPU). ``io_threads``: reader and writer threads each.
    ``resume``: continue the batch recorded in ``out_dir`` (its settings must match);
    ``overwrite``: replace existing outputs. ``report_path``: where the JSON report goes (default
    ``out_dir/cartoonkit-report.json``). ``echo`` receives one line per failed file as it happens
    (default: above the progress bar, on stderr).

    Raises :class:`~cartoonkit.errors.CartoonkitError` when the batch cannot start (bad setting,
    unusable folder, settings differ from the recorded batch, another batch holds the folder).
    Per-file problems and a stop mid-way are in the returned report instead.
    """
    wall_start = time.perf_counter()
    started = _now()
    in_dir, out_dir = Path(in_dir), Path(out_dir)
    echo = echo or _tqdm_echo
    _check_count("workers", workers, _MAX_WORKERS)
    if io_threads is not None:
        _check_count("io_threads", io_threads, 64)
    if batch_size is not None:
        _check_count("batch_size", batch_size, 4096)
    if not in_dir.is_dir():
        raise ConfigError(f"{in_dir}: no such folder; `batch` takes one folder (use `run` for files)")
    real_in, real_out = os.path.realpath(in_dir), os.path.realpath(out_dir)
    if real_in == real_out:
        raise ConfigError(f"-o {out_dir}: is the input folder; choose another output folder")

    device_list = _device_plan(cartoonizer, device, devices, workers)
    limits = limits or (cartoonizer.limits if cartoonizer is not None else ImageLimits())
    settings = _settings(config, cartoonizer, model, precision, device_list)
    cuda = any(d.type == "cuda" for d in device_list)
    batch_size = batch_size or (8 if cuda else 1)
    io_threads = io_threads or max(1, min(4, (os.cpu_count() or 1) // len(device_list)))

    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the output folder {out_dir}: {_os_reason(exc)}") from exc
    report = BatchReport(in_dir=in_dir, out_dir=out_dir, settings=settings, devices=[str(d) for d in device_list],
                         workers=len(device_list), batch_size=batch_size, started=started)
    with _locked(out_dir):
        mode, journal_keys, run_id = _decide_mode(out_dir, settings, resume, overwrite, report)
        skip_dirs = {real_out} if _inside(real_out, real_in) else set()
        found = _scan(in_dir, skip_dirs, report, echo)
        report.found = len(found)
        tasks = _plan(found, out_dir, config.format, report, echo)
        tasks = _skip_done(tasks, mode, journal_keys, report)
        _remove_leftovers({out_dir, *(t.dst.parent for t in tasks)})
        journal_path = out_dir / JOURNAL_FILE
        if mode == "overwrite":
            journal_path.unlink(missing_ok=True)  # a fresh overwrite run: nothing replaced yet
        state = {"format_version": 1, "cartoonkit": __version__, "run_id": run_id, "settings": settings,
                 "overwrite": mode != "keep", "complete": False, "input": str(in_dir), "started": started}
        _write_json(out_dir / STATE_FILE, state)

        if tasks:
            journal = journal_path if mode != "keep" else None
            bar = _progress_bar(len(tasks), progress)
            sink = _ReportSink(report, bar, echo)
            try:
                if len(device_list) == 1:
                    _run_here(tasks, report, sink, cartoonizer=cartoonizer, model=model, device=device_list[0],
                              precision=precision, limits=limits, config=config, batch_size=batch_size,
                              io_threads=io_threads, journal=journal, setup_start=wall_start)
                else:
                    report.setup_seconds = time.perf_counter() - wall_start
                    _run_processes(tasks, report, sink, model=model, devices=device_list, precision=precision,
                                   limits=limits, config=config, batch_size=batch_size, io_threads=io_threads,
                                   journal=journal)
            finally:
                bar.close()
            report.not_processed = len(tasks) - sink.processed
        else:
            report.setup_seconds = time.perf_counter() - wall_start

        report.finished = _now()
        report.wall_seconds = time.perf_counter() - wall_start
        if report.complete:
            with contextlib.suppress(OutputError, OSError):
                _write_json(out_dir / STATE_FILE, {**state, "complete": True, "finished": report.finished})
                journal_path.unlink(missing_ok=True)
        report_file = Path(report_path) if report_path else out_dir / REPORT_FILE
        try:
            _write_json(report_file, report.to_json())
            report.report_path = report_file
        except OutputError as exc:
            echo(f"error: the report was not written: {exc}")
    return report


# --------------------------------------------------------------------------- planning


def _device_plan(cartoonizer, device, devices, workers: int) -> list[torch.device]:
    """One entry per process: the devices given, or ``workers`` times the one device."""
    if cartoonizer is not None:
        if devices or workers != 1:
            raise ConfigError("cartoonizer=...: runs in this process; devices and workers need model/device instead")
        return [cartoonizer.device]
    if devices:
        if workers != 1:
            raise ConfigError(f"workers={workers}: give either --devices (one process per device) or --workers")
        return [resolve_device(d) for d in devices]
    resolved = resolve_device(device)
    if workers > 1 and resolved.type == "cuda":
        raise ConfigError(f"workers={workers}: --workers starts CPU processes; on CUDA one process per GPU is "
                          "fastest: use --devices cuda:0,cuda:1")
    return [resolved] * workers


def _settings(config: CartoonConfig, cartoonizer, model: str, precision: str,
              device_list: list[torch.device]) -> dict[str, Any]:
    """Everything that decides an output's pixels: a resumed batch must have the same."""
    if cartoonizer is not None:
        card = cartoonizer.model_card
        precisions = {str(cartoonizer.engine.dtype).removeprefix("torch.")}
        bucket = cartoonizer.engine.options.bucket
    else:
        from . import weights

        card = weights.ensure_installed(model)  # installs a known model once, before any worker starts
        precisions = {str(resolve_precision(precision, d)).removeprefix("torch.") for d in device_list}
        bucket = EngineOptions(precision=precision).bucket
    return {"style_weight": config.style_weight, "resolution": config.resolution, "format": config.format,
            "mode": config.mode, "face_size": config.face_size if config.mode == "compound" else None,
            "quality": config.quality if config.format != "png" else None, "upscale": config.upscale,
            "denoise": config.denoise, "beautify": config.beautify, "model": card.name,
            "model_sha256": card.weights_sha256, "precision": "+".join(sorted(precisions)), "bucket": bucket}


def _decide_mode(out_dir: Path, settings: dict, resume: bool, overwrite: bool,
                 report: BatchReport) -> tuple[str, set[str], str]:
    """``keep`` (skip existing outputs), ``overwrite`` (replace all) or ``journal`` (finish an interrupted
    overwrite run: skip only what it already replaced); plus those outputs' keys and the run id."""
    state = _read_state(out_dir)
    differences = _differences(state.get("settings", {}), settings) if state else []
    interrupted_overwrite = bool(state and state.get("overwrite") and not state.get("complete"))
    if differences and (resume or not overwrite):
        hint = "--resume needs the same settings" if resume else "use --overwrite to replace its outputs"
        raise ConfigError(f"{out_dir} holds a batch made with other settings ({'; '.join(differences)}): {hint}, "
                          "or choose another -o folder")
    if resume and state is not None:
        report.resumed = True
        if interrupted_overwrite:
            return "journal", _read_journal(out_dir / JOURNAL_FILE), state.get("run_id") or uuid.uuid4().hex
        return "keep", set(), state.get("run_id") or uuid.uuid4().hex
    if resume:
        log.info("%s: no batch to resume there; starting one", out_dir)
    if overwrite:
        return "overwrite", set(), uuid.uuid4().hex
    if interrupted_overwrite:
        raise ConfigError(f"{out_dir} holds an interrupted --overwrite batch: add --resume to finish it, "
                          "or --overwrite to start it again")
    return "keep", set(), uuid.uuid4().hex


def _differences(old: dict, new: dict) -> list[str]:
    return [f"{key} {new[key]!r}, was {old[key]!r}" for key in new if key in old and old[key] != new[key]]


def _scan(in_dir: Path, skip_dirs: set[str], report: BatchReport,
          echo: Callable[[str], None]) -> list[tuple[Path, PurePosixPath]]:
    """Image files under ``in_dir`` with their relative paths, sorted; never follows folder links."""
    real_in = os.path.realpath(in_dir)
    found: list[tuple[Path, PurePosixPath]] = []
    stack: list[tuple[Path, PurePosixPath]] = [(in_dir, PurePosixPath())]
    while stack:
        folder, rel = stack.pop()
        try:
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda e: e.name)
        except OSError as exc:
            _fail(report, echo, str(folder), f"cannot list this folder ({_os_reason(exc)})")
            continue
        subfolders = []
        for entry in entries:
            if entry.name.startswith("."):  # hidden: not photos, and our own temporary files
                continue
            path, rel_path = Path(entry.path), rel / entry.name
            try:
                if entry.is_symlink():
                    target = os.path.realpath(entry.path)
                    if os.path.isdir(target):
                        where = "inside the input folder: its files are processed under their own path" \
                            if _inside(target, real_in) else f"to {target}, outside the input folder"
                        report.skipped.append((str(path), f"symbolic link to a folder ({where}); not followed"))
                        continue
                    if path.suffix.lower() not in IMAGE_SUFFIXES:
                        continue
                    if not os.path.exists(target):
                        _fail(report, echo, str(path), "broken symbolic link")
                    elif not _inside(target, real_in):
                        report.skipped.append((str(path), f"symbolic link to {target}, outside the input folder; "
                                                          "not followed"))
                    elif os.path.isfile(target):
                        found.append((path, rel_path))
                elif entry.is_dir(follow_symlinks=False):
                    if os.path.realpath(entry.path) not in skip_dirs:
                        subfolders.append((path, rel_path))
                elif entry.is_file(follow_symlinks=False) and path.suffix.lower() in IMAGE_SUFFIXES:
                    found.append((path, rel_path))
            except OSError as exc:
                _fail(report, echo, str(path), f"cannot access ({_os_reason(exc)})")
        stack.extend(reversed(subfolders))
    return sorted(found, key=lambda item: item[1].parts)


def _plan(found: list[tuple[Path, PurePosixPath]], out_dir: Path, fmt: str, report: BatchReport,
          echo: Callable[[str], None]) -> list[Task]:
    """Pair each input with its output; refuse escapes, overwriting an input and collisions (first wins)."""
    real_out = os.path.realpath(out_dir)
    inputs = {os.path.realpath(src) for src, _ in found}
    ext = extension_for(fmt)
    claimed: dict[str, Path] = {}
    tasks = []
    for src, rel in found:
        key = rel.with_name(rel.stem + ext).as_posix()
        dst = out_dir.joinpath(*rel.parent.parts, rel.stem + ext)
        real_dst = os.path.realpath(dst)
        if real_dst == real_out or not _inside(real_dst, real_out):
            _fail(report, echo, str(src), f"output {dst} would be written outside {out_dir} (through a symbolic "
                                          "link there); refused")
        elif real_dst in inputs:
            _fail(report, echo, str(src), f"output {dst} would overwrite an input; choose another -o folder")
        elif key in claimed:
            _fail(report, echo, str(src), f"output {dst} is already the output of {claimed[key]}; "
                                          "inputs need distinct names")
        else:
            claimed[key] = src
            tasks.append(Task(src=src, dst=dst, key=key))
    return tasks


def _skip_done(tasks: list[Task], mode: str, journal_keys: set[str], report: BatchReport) -> list[Task]:
    todo = []
    for task in tasks:
        exists = os.path.lexists(task.dst)
        if mode == "keep" and exists:
            reason = "done by an earlier run" if report.resumed else f"{task.dst} exists (use --overwrite)"
            report.skipped.append((task.name, reason))
        elif mode == "journal" and exists and task.key in journal_keys:
            report.skipped.append((task.name, "done by the interrupted --overwrite run"))
        else:
            todo.append(task)
    return todo


def _remove_leftovers(folders: set[Path]) -> None:
    """Delete the hidden temporary files a killed run left in the folders this run writes to."""
    for folder in folders:
        try:
            with os.scandir(folder) as listing:
                for entry in listing:
                    if _TEMPORARY.match(entry.name) and entry.is_file(follow_symlinks=False):
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(entry.path)
        except (FileNotFoundError, NotADirectoryError):
            continue


# --------------------------------------------------------------------------- running


def _run_here(tasks, report, sink, *, cartoonizer, model, device, precision, limits, config, batch_size,
              io_threads, journal, setup_start) -> None:
    """The pipeline in this process, on one device."""
    if cartoonizer is None:
        from .pipeline import Cartoonizer

        cartoonizer = Cartoonizer(model=model, device=device, precision=precision, limits=limits)
    report.setup_seconds = time.perf_counter() - setup_start
    with _Journal.open(journal) as journal_file:
        pipeline = _Pipeline(cartoonizer, config, tasks, sink, batch_size=batch_size, io_threads=io_threads,
                             journal=journal_file, stop=threading.Event(), limits=limits)
        pipeline.run()
    _merge(report, pipeline.seconds, pipeline.batches, pipeline.gpu)
    report.interrupted = report.interrupted or pipeline.interrupted


@dataclass(frozen=True)
class _WorkerSpec:
    index: int
    model: str
    device: str
    precision: str
    limits: ImageLimits
    config: CartoonConfig
    batch_size: int
    io_threads: int
    threads: int
    journal: Path | None


def _run_processes(tasks, report, sink, *, model, devices, precision, limits, config, batch_size, io_threads,
                   journal) -> None:
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
        spec = _WorkerSpec(index, model, str(device), precision, limits, config, batch_size, io_threads, threads,
                           journal)
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
                _merge(report, seconds, Counter(batches), Counter(gpu))
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


def _worker_main(spec: _WorkerSpec, tasks: list[Task], events, stop, parent_pid: int) -> None:
    """Entry point of a spawned worker: its own model, its own pipeline, events to the parent."""
    sink = _QueueSink(events)
    seconds, batches, gpu, interrupted = dict.fromkeys(STAGES, 0.0), Counter(), Counter(), False
    try:
        torch.set_num_threads(spec.threads)
        device = torch.device(spec.device)
        if device.type == "cuda":
            torch.cuda.set_device(device)
        from .pipeline import Cartoonizer

        cartoonizer = Cartoonizer(model=spec.model, device=device, precision=spec.precision, limits=spec.limits)
        with _Journal.open(spec.journal) as journal:
            pipeline = _Pipeline(cartoonizer, spec.config, tasks, sink, batch_size=spec.batch_size,
                                 io_threads=spec.io_threads, journal=journal, stop=stop, limits=spec.limits,
                                 parent_pid=parent_pid)
            pipeline.run()
        seconds, batches, gpu, interrupted = pipeline.seconds, pipeline.batches, pipeline.gpu, pipeline.interrupted
    except KeyboardInterrupt:
        interrupted = True
    except CartoonkitError as exc:
        sink.fatal(f"worker on {spec.device}: {exc}")
    except Exception as exc:  # a bug: say so rather than vanish
        sink.fatal(f"worker on {spec.device}: unexpected {type(exc).__name__}: {exc}")
    finally:
        events.put(("finished", spec.index, seconds, dict(batches), dict(gpu), interrupted))


def _merge(report: BatchReport, seconds: dict[str, float], batches: Counter, gpu: Counter) -> None:
    for stage, value in seconds.items():
        report.seconds[stage] = report.seconds.get(stage, 0.0) + value
    report.batches.update(batches)
    report.gpu.update(gpu)


class _ReportSink:
    """Pipeline events -> the report, the progress bar and the error lines (thread-safe)."""

    def __init__(self, report: BatchReport, bar, echo: Callable[[str], None]):
        self.report, self.bar, self.echo = report, bar, echo
        self.lock = threading.Lock()
        self.processed = 0  # files of this run that were done or failed

    def done(self, task: Task) -> None:
        with self.lock:
            self.report.done += 1
            self.processed += 1
            self.bar.update(1)

    def failed(self, task: Task, reason: str) -> None:
        with self.lock:
            _fail(self.report, self.echo, task.name, reason)
            self.processed += 1
            self.bar.update(1)

    def note(self, task: Task, note: str) -> None:
        with self.lock:
            self.report.notes.append((task.name, note))

    def fatal(self, reason: str) -> None:
        with self.lock:
            if self.report.stopped is None:
                self.report.stopped = reason


class _QueueSink:
    """Pipeline events -> the parent process (picklable tuples)."""

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


class _Journal:
    """Append-only list of the outputs an ``--overwrite`` run has replaced (one JSON string a line)."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise OutputError(f"cannot write {path}: {_os_reason(exc)}") from exc

    @classmethod
    @contextlib.contextmanager
    def open(cls, path: Path | None) -> Iterator[_Journal | None]:
        journal = cls(path) if path is not None else None
        try:
            yield journal
        finally:
            if journal is not None:
                os.close(journal.fd)

    def add(self, key: str) -> None:
        try:
            os.write(self.fd, (json.dumps(key) + "\n").encode())  # one write: whole lines even from many processes
        except OSError as exc:
            raise OutputError(f"cannot write {self.path}: {_os_reason(exc)}") from exc


def _read_journal(path: Path) -> set[str]:
    keys = set()
    try:
        lines = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return keys
    for line in lines:
        with contextlib.suppress(ValueError):  # a line cut by a kill
            key = json.loads(line)
            if isinstance(key, str):
                keys.add(key)
    return keys


# --------------------------------------------------------------------------- the pipeline

_READERS_DONE = object()
_WRITERS_DONE = object()


@dataclass(eq=False)
class _Item:
    """One photo on its way through the engine stage."""

    task: Task
    error: str | None = None
    jpeg: torch.Tensor | None = None        # CUDA: the file's bytes, for nvJPEG
    decoded: DecodedImage | None = None     # CUDA: decoded on the CPU, in pinned memory
    photo: torch.Tensor | None = None       # resized, on the engine's device
    alpha: torch.Tensor | None = None
    notes: tuple[str, ...] = ()


@dataclass(eq=False)
class _Result:
    """One cartoon on its way to a writer: pixels to encode, or bytes already encoded."""

    task: Task
    rgb: torch.Tensor | None
    alpha: torch.Tensor | None
    data: bytes | None
    ready: Any  # a CUDA event to wait for before reading ``rgb``, or None
    notes: tuple[str, ...]


class _Pipeline:
    """Readers -> engine (the calling thread) -> writers, on one device, with bounded queues."""

    def __init__(self, cartoonizer, config: CartoonConfig, tasks: Sequence[Task], sink, *, batch_size: int,
                 io_threads: int, journal: _Journal | None, stop, limits: ImageLimits, parent_pid: int | None = None):
        self.ck, self.config, self.sink, self.journal = cartoonizer, config, sink, journal
        self.device = cartoonizer.device
        self.cuda = self.device.type == "cuda"
        self.limits = limits
        self.batch_size = batch_size
        self.n_readers = self.n_writers = io_threads
        self.stop = stop
        self.parent_pid = parent_pid
        self.todo: queue.Queue = queue.Queue()
        for task in tasks:
            self.todo.put(task)
        # Bounded: readers wait when the engine is behind, the engine when the writers are.
        self.ready: queue.Queue = queue.Queue(maxsize=max(2 * batch_size, self.n_readers + 1))
        self.results: queue.Queue = queue.Queue(maxsize=max(2 * batch_size, self.n_writers + 1))
        self.seconds = dict.fromkeys(STAGES, 0.0)
        self.batches: Counter = Counter()
        self.gpu: Counter = Counter()
        self.interrupted = False
        self._halt = threading.Event()    # the engine loop is over: readers quit
        self._fatal = threading.Event()   # the output folder takes no more files
        self._lock = threading.Lock()

    def run(self) -> None:
        readers = [threading.Thread(target=self._reader, name=f"cartoonkit-reader-{i}", daemon=True)
                   for i in range(self.n_readers)]
        writers = [threading.Thread(target=self._writer, name=f"cartoonkit-writer-{i}", daemon=True)
                   for i in range(self.n_writers)]
        for thread in readers + writers:
            thread.start()
        try:
            with torch.cuda.device(self.device) if self.cuda else contextlib.nullcontext():
                self._engine_loop()
        except KeyboardInterrupt:
            self.interrupted = True
            self.stop.set()
        finally:
            self._halt.set()
            for _ in writers:
                self.results.put(_WRITERS_DONE)  # writers always drain, so this never blocks for long
            for thread in writers + readers:
                thread.join()

    # ----------------------------------------------------------------- helpers

    def _stopping(self) -> bool:
        if self.stop.is_set():
            return True
        return self.parent_pid is not None and os.getppid() != self.parent_pid  # the parent was killed

    @contextlib.contextmanager
    def _timed(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            with self._lock:
                self.seconds[stage] += time.perf_counter() - start

    def _put(self, target: queue.Queue, item) -> bool:
        """Put, waiting while the queue is full, unless the run is stopping."""
        while True:
            try:
                target.put(item, timeout=0.1)
                return True
            except queue.Full:
                if self._halt.is_set() or self._stopping():
                    return False

    # ----------------------------------------------------------------- readers

    def _reader(self) -> None:
        while not (self._halt.is_set() or self._stopping()):
            try:
                task = self.todo.get_nowait()
            except queue.Empty:
                break
            if not self._put(self.ready, self._load(task)):
                return
        self._put(self.ready, _READERS_DONE)

    def _load(self, task: Task) -> _Item:
        item = _Item(task)
        try:
            with self._timed("read"):
                data = _read_bytes(task.src, task.name, self.limits)
            if self.cuda and _plain_jpeg(data, task.name, self.limits):
                item.jpeg = torch.frombuffer(bytearray(data), dtype=torch.uint8)  # decoded on the GPU, in batches
                return item
            with self._timed("decode"):
                decoded = read_image(data, name=task.name, limits=self.limits)
            item.notes = decoded.notes
            if self.cuda:
                item.decoded = _pinned(decoded)
            else:
                with self._timed("preprocess"):
                    item.photo, item.alpha = self.ck.preprocess(decoded, self.config)
        except InvalidImageError as exc:
            item.error = _strip_name(str(exc), task.name)
        except Exception as exc:  # a bug must not cost the user the rest of the folder
            item.error = _unexpected(exc)
        return item

    # ----------------------------------------------------------------- engine

    def _engine_loop(self) -> None:
        pending: dict[tuple[int, int], list[_Item]] = {}
        readers_left = self.n_readers
        while readers_left or pending:
            if self._stopping():
                return
            pulled, drained = self._pull(block=not pending)
            items = []
            for item in pulled:
                if item is _READERS_DONE:
                    readers_left -= 1
                else:
                    items.append(item)
            for item in self._to_device(items):
                pending.setdefault(self.ck.bucket_of(item.photo), []).append(item)
            for key in list(pending):
                group = pending[key]
                while len(group) >= self.batch_size:
                    self._run(group[:self.batch_size])
                    del group[:self.batch_size]
                if not group:
                    del pending[key]
            if pending and (drained or not readers_left):
                # Nothing more is waiting: run the fullest partial batch rather than idle.
                self._run(pending.pop(max(pending, key=lambda k: len(pending[k]))))

    def _pull(self, block: bool) -> tuple[list, bool]:
        """Up to ``batch_size`` ready items; ``drained``: the ready queue ran empty."""
        items: list = []
        try:
            items.append(self.ready.get(timeout=0.1) if block else self.ready.get_nowait())
            while len(items) < self.batch_size:
                items.append(self.ready.get_nowait())
        except queue.Empty:
            return items, True
        return items, False

    def _to_device(self, items: list[_Item]) -> list[_Item]:
        """Finish what the readers left for the device (CUDA: decode JPEGs, copy, resize); report failures."""
        jpegs = [item for item in items if item.error is None and item.jpeg is not None]
        if jpegs:
            self._decode_on_gpu(jpegs)
        good = []
        for item in items:
            if item.error is None and item.photo is None:
                try:
                    with self._timed("preprocess"):
                        item.photo, item.alpha = self.ck.preprocess(item.decoded, self.config)
                    item.decoded = None
                except Exception as exc:
                    item.error = _unexpected(exc)
            if item.error is not None:
                self.sink.failed(item.task, item.error)
            else:
                good.append(item)
        return good

    def _decode_on_gpu(self, jpegs: list[_Item]) -> None:
        """nvJPEG-decode a list of JPEGs in one call; on any error decode those files with Pillow instead."""
        with self._timed("decode"):
            try:
                from torchvision.io import ImageReadMode, decode_jpeg

                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # torchvision's deprecation notice for its image codecs
                    images = decode_jpeg([item.jpeg for item in jpegs], mode=ImageReadMode.RGB, device=self.device)
                for item, rgb in zip(jpegs, images, strict=True):
                    item.decoded = DecodedImage(rgb=rgb, alpha=None, name=item.task.name, format="JPEG")
                self.gpu["decoded"] += len(jpegs)
            except Exception as exc:  # nvJPEG does not take every JPEG (some progressive or 12-bit files)
                log.debug("nvJPEG could not decode a batch (%s); using the CPU decoder", exc)
                for item in jpegs:
                    try:
                        decoded = read_image(item.jpeg.numpy().tobytes(), name=item.task.name, limits=self.limits)
                        item.decoded, item.notes = decoded, decoded.notes
                    except InvalidImageError as error:
                        item.error = _strip_name(str(error), item.task.name)
            for item in jpegs:
                item.jpeg = None

    def _run(self, items: list[_Item]) -> None:
        """One engine call for photos of one bucket shape, then hand the results to the writers."""
        timings: dict[str, float] = {}
        try:
            rgbs = self.ck.cartoonize_batch([item.photo for item in items], self.config.style_weight, timings)
            if self.config.mode == "compound":  # the faces of the whole batch share head-network calls
                heads = [{} for _ in items]
                rgbs = [rgb for rgb, _ in self.ck.add_heads([item.photo for item in items], rgbs, self.config,
                                                             heads, max_batch=max(8, len(items)))]
                timings["network"] = timings.get("network", 0.0) + sum(sum(h.values()) for h in heads)
            with self._timed("postprocess"):
                rgbs = [self.ck.finish(rgb, self.config) for rgb in rgbs]  # back to the output size, beautify
        except Exception as exc:
            if len(items) > 1:  # find the photo that fails; the others still go through
                for item in items:
                    self._run([item])
                return
            self.sink.failed(items[0].task, _engine_failure(exc, items[0].photo, self.device))
            return
        with self._lock:
            for stage, seconds in timings.items():
                self.seconds[stage] += seconds
            self.batches[len(items)] += 1
        encoded: list[bytes | None] = [None] * len(items)
        ready = None
        if self.cuda:
            if self.config.format == "jpg":
                encoded = self._encode_on_gpu(rgbs)
            with self._timed("postprocess"):
                rgbs = [rgb if data is None else None for rgb, data in zip(rgbs, encoded, strict=True)]
                rgbs = [_to_pinned_host(rgb) if rgb is not None else None for rgb in rgbs]
                ready = torch.cuda.Event()
                ready.record()
        for item, rgb, data in zip(items, rgbs, encoded, strict=True):
            result = _Result(item.task, rgb, item.alpha, data, ready, item.notes)
            item.photo = item.alpha = None
            if not self._put(self.results, result):
                return

    def _encode_on_gpu(self, rgbs: list[torch.Tensor]) -> list[bytes | None]:
        """nvJPEG-encode a batch of JPEG outputs; ``None`` each (the writers encode) on any error."""
        try:
            from torchvision.io import encode_jpeg

            with self._timed("encode"), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                encoded = encode_jpeg([rgb.contiguous() for rgb in rgbs], quality=self.config.quality)
                data = [bytes(tensor.cpu().numpy().tobytes()) for tensor in encoded]
            self.gpu["encoded"] += len(data)
            return data
        except Exception as exc:
            log.debug("nvJPEG could not encode a batch (%s); using the CPU encoder", exc)
            return [None] * len(rgbs)

    # ----------------------------------------------------------------- writers

    def _writer(self) -> None:
        while True:
            result = self.results.get()
            if result is _WRITERS_DONE:
                return
            if self._fatal.is_set():
                continue  # the folder takes no more files: leave the rest to --resume
            task = result.task
            try:
                data = result.data
                if data is None:
                    if result.ready is not None:
                        result.ready.synchronize()  # the copy from the GPU has landed
                    with self._timed("encode"):
                        data = encode_image(result.rgb, result.alpha, format=self.config.format,
                                            quality=self.config.quality)
                with self._timed("write"):
                    write_atomic(task.dst, data)
                if self.journal is not None:
                    self.journal.add(task.key)
            except OutputError as exc:
                if _is_fatal(exc):
                    with self._lock:
                        first = not self._fatal.is_set()
                        self._fatal.set()
                    self.stop.set()
                    if first:
                        self.sink.fatal(str(exc))
                else:
                    self.sink.failed(task, str(exc))
                continue
            except Exception as exc:
                self.sink.failed(task, _unexpected(exc))
                continue
            for note in result.notes:
                self.sink.note(task, note)
            self.sink.done(task)


# --------------------------------------------------------------------------- small helpers


def _read_bytes(path: Path, name: str, limits: ImageLimits) -> bytes:
    """The whole file, refusing one over the size limit before reading it."""
    try:
        with open(path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            if size > limits.max_file_bytes:
                raise InvalidImageError(f"{name}: file is {size:,} bytes, larger than the limit of "
                                        f"{limits.max_file_bytes:,} bytes")
            return file.read(limits.max_file_bytes + 1)
    except FileNotFoundError:
        raise InvalidImageError(f"{name}: file does not exist (removed while the batch ran?)") from None
    except PermissionError:
        raise InvalidImageError(f"{name}: permission denied (file is not readable)") from None
    except OSError as exc:
        raise InvalidImageError(f"{name}: cannot read file ({_os_reason(exc)})") from exc


def _plain_jpeg(data: bytes, name: str, limits: ImageLimits) -> bool:
    """Whether nvJPEG can decode ``data`` to exactly what Pillow would give: a baseline-style RGB or grey
    JPEG without an EXIF rotation (those, CMYK and the rest take the CPU path, which handles them)."""
    if data[:3] != b"\xff\xd8\xff":
        return False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from PIL import Image

            with Image.open(io.BytesIO(data)) as image:
                if image.format != "JPEG" or image.mode not in ("RGB", "L"):
                    return False
                check_dimensions(image.size, name, limits)  # the pixel limit, before any decoding
                exif = image.getexif()
                if not exif and image.info.get("exif"):
                    return False  # unreadable EXIF: the CPU path says so in the notes
                return exif.get(0x0112, 1) == 1
    except InvalidImageError:
        raise
    except Exception:
        return False  # let the CPU decoder give the precise error


def _pinned(decoded: DecodedImage) -> DecodedImage:
    """The same image in page-locked memory, so the copy to the GPU is asynchronous."""
    try:
        return dataclasses.replace(decoded, rgb=decoded.rgb.pin_memory())
    except RuntimeError:
        return decoded


def _to_pinned_host(rgb: torch.Tensor) -> torch.Tensor:
    host = torch.empty(rgb.shape, dtype=rgb.dtype, pin_memory=True)
    host.copy_(rgb, non_blocking=True)
    return host


def _is_fatal(exc: BaseException) -> bool:
    """An error of the output folder itself (full, read-only, not writable), not of one file."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, OSError) and cause.errno in _FATAL_ERRNOS:
            return True
        cause = cause.__cause__
    return False


def _engine_failure(exc: Exception, photo: torch.Tensor, device: torch.device) -> str:
    if isinstance(exc, torch.OutOfMemoryError):
        height, width = photo.shape[-2:]
        return f"out of memory on {device} at {width}x{height}; try a lower --resolution"
    return _unexpected(exc)


def _unexpected(exc: BaseException) -> str:
    return f"unexpected {type(exc).__name__}: {exc}"


def _strip_name(message: str, name: str) -> str:
    """``"<name>: problem"`` -> ``"problem"``: the report names the file separately."""
    prefix = f"{name}: "
    return message[len(prefix):] if message.startswith(prefix) else message


def _fail(report: BatchReport, echo: Callable[[str], None], name: str, reason: str) -> None:
    report.failed.append((name, reason))
    echo(f"error: {name}: {reason}")


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _os_reason(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


def _check_count(name: str, value, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
        raise ConfigError(f"{name}={value!r}: must be an integer from 1 to {high}")


def _read_state(out_dir: Path) -> dict | None:
    path = out_dir / STATE_FILE
    try:
        state = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise OutputError(f"{path}: unreadable batch state ({exc}); delete it to start the batch over") from exc
    if not isinstance(state, dict):
        raise OutputError(f"{path}: not a cartoonkit batch state; delete it to start the batch over")
    return state


def _write_json(path: Path, data: dict) -> None:
    write_atomic(path, (json.dumps(data, indent=2) + "\n").encode())


@contextlib.contextmanager
def _locked(out_dir: Path) -> Iterator[None]:
    """One batch at a time per output folder; the lock goes with the process, even on ``kill -9``."""
    path = out_dir / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise OutputError(f"cannot write to the output folder {out_dir}: {_os_reason(exc)}") from exc
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise OutputError(f"{out_dir}: another cartoonkit batch is writing to this folder; wait for it "
                                  "to finish or choose another -o folder") from None
        yield
    finally:
        os.close(fd)


def _progress_bar(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="cartoonizing", unit="img", file=sys.stderr, disable=not enabled)


def _tqdm_echo(line: str) -> None:
    from tqdm.auto import tqdm

    tqdm.write(line, file=sys.stderr)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
