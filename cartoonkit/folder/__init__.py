"""Folder runs: ``cartoonkit batch IN_DIR -o OUT_DIR``, pipelined, resumable, with a report.

:func:`run_folder` is the whole job; its parts are one module each:

* :mod:`.plan`: which files there are and where each output goes (also ``cartoonkit run``'s planner);
* :mod:`.state`: the settings fingerprint, journal and lock that make ``--resume`` safe;
* :mod:`.stream`: readers -> engine -> finisher -> writers on one device, through ``Cartoonizer.process_many``
  (nvJPEG through :mod:`cartoonkit.gpu_codecs` on CUDA);
* :mod:`.workers`: the stream in this process, and the rules for which engines may run in several processes;
* :mod:`.ray_backend`: ``backend="ray"`` (and ``workers``/``devices``): the same tasks on a pool of Ray actors, on
  this machine or a cluster;
* :mod:`.report`: what happened to every file, and the JSON report.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timezone

from .. import __version__
from ..config import DEFAULT_MODEL, CartoonConfig
from ..engine import resolve_device
from ..errors import ConfigError, OutputError
from ..options import EngineOptions
from ..run_options import FolderOptions, batch_size_for
from ..settings import apply_changes
from . import storage
from .account import KEPT
from .plan import inside, plan_outputs, remove_leftovers, scan_tree, split_done
from .report import REPORT_FILE, STAGES, FolderReport, ReportSink, record_failure
from .state import JOURNAL_FILE, LOCK_FILE, STATE_FILE, decide_mode, fingerprint, locked, write_json
from .storage import location
from .workers import process_devices, run_here

__all__ = ["JOURNAL_FILE", "LOCK_FILE", "REPORT_FILE", "STAGES", "STATE_FILE", "FolderOptions", "FolderReport",
           "run_folder"]


def run_folder(in_dir: str | os.PathLike, out_dir: str | os.PathLike, config: CartoonConfig = CartoonConfig(),
               engine_options: EngineOptions = EngineOptions(), run_options: FolderOptions = FolderOptions(), *,
               cartoonizer=None, model: str = DEFAULT_MODEL, head_model: str | None = None, progress: bool = True,
               echo: Callable[[str], None] | None = None, **settings) -> FolderReport:
    """Cartoonize every image under ``in_dir`` (recursively) into ``out_dir``, keeping the layout.

    Three objects say how: ``config`` (:class:`~cartoonkit.config.CartoonConfig`, the picture), ``engine_options``
    (:class:`~cartoonkit.options.EngineOptions`, how the network runs) and ``run_options``
    (:class:`~cartoonkit.run_options.FolderOptions`: batch size, I/O threads, processes, the backend and its Ray
    settings, resume, overwrite, the report's path, the input limits; each field's help says what it does).
    ``**settings`` changes any of their fields by name on top (``batch_size=4, resume=True, resolution=512``).

    ``cartoonizer``: a warm :class:`~cartoonkit.pipeline.Cartoonizer` to use in this process (then ``model``,
    ``head_model`` and ``engine_options`` come from it); otherwise one is made from those. More than one process
    (``workers``, ``devices``) means Ray actors on this machine, as ``backend="ray"`` (needs the ``ray`` extra).
    ``progress``: the progress bar on stderr; ``echo`` receives one line per failed file as it happens (default:
    above the progress bar, on stderr).

    Raises :class:`~cartoonkit.errors.CartoonkitError` when the run cannot start (bad setting, unusable
    folder, settings differ from the recorded run, another run holds the folder). Per-file problems and a
    stop mid-way are in the returned report instead.
    """
    wall_start = time.perf_counter()
    started = _now()
    config, engine_options, run_options = apply_changes(settings, config, engine_options, run_options)
    in_dir, out_dir = location(in_dir), location(out_dir)  # a local folder, or object storage (storage.py)
    echo = echo or _tqdm_echo
    ray_settings = None
    if run_options.backend == "ray":
        from .ray_backend import RaySettings, require_ray

        if cartoonizer is not None:
            raise ConfigError("backend='ray': the actors build their own models; give model and engine_options "
                              "instead of cartoonizer")
        ray_settings = RaySettings(run_options.address, run_options.actors, run_options.gpus_per_actor)
        ray_settings.check()
        require_ray()  # before the model is installed: a missing extra is the first thing to hear about
    elif run_options.devices or run_options.workers != 1:
        ray_settings = _processes_on_ray(engine_options, run_options, cartoonizer)
    if not storage.is_folder(in_dir):
        raise ConfigError(f"{in_dir}: no such folder; `batch` takes one folder (use `run` for files)")
    if storage.same_place(in_dir, out_dir):
        raise ConfigError(f"-o {out_dir}: is the input folder; choose another output folder")

    # The device of this process's stream, or the kind of device the actors run on, and the engine options as
    # they run there (the caller's warm engine's, or those each process resolves), for the fingerprint.
    if ray_settings is not None:
        import torch

        device = torch.device(ray_settings.device_type(engine_options))
        engine_options = replace(engine_options, device=device.type).for_processes(device.type)
        running = engine_options
    elif cartoonizer is not None:
        device, running = cartoonizer.device, cartoonizer.engine.options
    else:
        device = resolve_device(engine_options.device)
        running = engine_options.resolved(device.type)
    limits = run_options.limits
    settings = _fingerprint(config, running, run_options, cartoonizer, model, head_model)
    batch_size = batch_size_for(run_options.batch_size, device.type)
    io_threads = run_options.io_threads or max(1, min(4, os.cpu_count() or 1))

    storage.prepare_output(out_dir)
    report = FolderReport(in_dir=in_dir, out_dir=out_dir, settings=settings, devices=[str(device)],
                          backend="ray" if ray_settings else "local", batch_size=batch_size, started=started)

    def fail(name: str, reason: str) -> None:
        record_failure(report, echo, name, reason)

    with locked(out_dir):
        mode, journal_keys, run_id, report.resumed = decide_mode(out_dir, settings, run_options.resume,
                                                                 run_options.overwrite)
        found = _scan(in_dir, out_dir, fail, report)
        report.found = len(found)
        tasks = plan_outputs(found, out_dir, config.format, fail)
        tasks, skipped = split_done(tasks, mode, journal_keys, report.resumed, exists=storage.existing(out_dir))
        for name, reason in skipped:
            report.skip(name, KEPT, reason)
        remove_leftovers({out_dir, *(t.dst.parent for t in tasks)})
        journal_path = out_dir / JOURNAL_FILE
        if mode == "overwrite":
            storage.remove(journal_path)  # a fresh overwrite run: nothing replaced yet
        state = {"format_version": 1, "cartoonkit": __version__, "run_id": run_id, "settings": settings,
                 "overwrite": mode != "keep", "complete": False, "input": str(in_dir), "started": started}
        write_json(out_dir / STATE_FILE, state)

        if tasks:
            journal = journal_path if mode != "keep" else None
            bar = _progress_bar(len(tasks), progress)
            sink = ReportSink(report, bar, echo)
            try:
                if ray_settings is not None:
                    _run_on_ray(tasks, report, sink, ray_settings, wall_start, model=model, head_model=head_model,
                                engine_options=engine_options, limits=limits, config=config, batch_size=batch_size,
                                journal=journal, device_type=device.type)
                else:
                    if cartoonizer is None:
                        from ..pipeline import Cartoonizer

                        cartoonizer = Cartoonizer.from_pretrained(model, engine_options=engine_options,
                                                                  head_model=head_model, limits=limits)
                    report.setup_seconds = time.perf_counter() - wall_start
                    run_here(tasks, report, sink, cartoonizer, config, batch_size=batch_size, io_threads=io_threads,
                             journal=journal, limits=limits)
            finally:
                bar.close()
            report.not_processed = len(tasks) - sink.processed
            for task in tasks:  # the run stopped before these: --resume does them
                if task.key not in sink.processed_keys:
                    report.not_processed_files.append(task.name)
                    report.account.add("not processed", "not processed", task.name)
        else:
            report.setup_seconds = time.perf_counter() - wall_start

        report.finished = _now()
        report.wall_seconds = time.perf_counter() - wall_start
        if report.complete:
            with contextlib.suppress(OutputError, OSError):
                write_json(out_dir / STATE_FILE, {**state, "complete": True, "finished": report.finished})
                storage.remove(journal_path)
        report_file = location(run_options.report) if run_options.report else out_dir / REPORT_FILE
        try:
            write_json(report_file, report.to_json())
            report.report_path = report_file
        except OutputError as exc:
            echo(f"error: the report was not written: {exc}")
    return report


def _processes_on_ray(engine_options: EngineOptions, run_options: FolderOptions, cartoonizer):
    """``workers`` CPU processes, or one process per device, on this machine: Ray actors on a Ray started for
    the run (the one code path for more than one process: docs/scaling.md says why the in-house pool went).
    The rules for which engines may split are the local ones (:func:`.workers.process_devices`)."""
    from .ray_backend import RaySettings, require_ray

    plan = process_devices(engine_options, run_options.devices, run_options.workers, cartoonizer)
    kinds = {d.type for d in plan}
    if len(kinds) > 1:
        raise ConfigError(f"--devices {','.join(map(str, plan))}: give devices of one kind (all cuda or all cpu); "
                          "the processes are alike")
    require_ray("--workers/--devices (processes run as Ray actors)")
    if kinds != {"cuda"}:
        return RaySettings(actors=len(plan), gpus_per_actor=0)
    gpus = sorted({d.index or 0 for d in plan})  # two processes on one GPU share it: half a GPU each
    return RaySettings(actors=len(plan), gpus_per_actor=len(gpus) / len(plan),
                       visible_gpus=",".join(map(str, gpus)))


def _scan(in_dir, out_dir, fail, report):
    """The inputs under ``in_dir``; an ``out_dir`` inside it is not input."""
    if storage.is_object(in_dir):
        inner = storage.is_object(out_dir) and out_dir.within(in_dir)
        return storage.scan_objects(in_dir, out_dir if inner else None, fail, report.skip, folder=report.searched)
    real_in, real_out = os.path.realpath(in_dir), None if storage.is_object(out_dir) else os.path.realpath(out_dir)
    skip_dirs = {real_out} if real_out and inside(real_out, real_in) else set()
    return scan_tree(in_dir, skip_dirs, fail, report.skip, folder=report.searched)


def _run_on_ray(tasks, report, sink, ray_settings, wall_start, *, device_type, **kwargs) -> None:
    from .ray_backend import connected, pool_shape, run_ray

    try:
        with connected(ray_settings) as ray:
            shape = pool_shape(ray, ray_settings, device_type)
            report.devices = [f"ray:{device_type}"] * shape[0]  # one entry per actor, as one per worker process
            report.workers = shape[0]
            report.setup_seconds = time.perf_counter() - wall_start  # the actors' model loading is in the wall time
            run_ray(tasks, report, sink, settings=ray_settings, ray=ray, device_type=device_type, shape=shape,
                    **kwargs)
    finally:
        # After Ray is done with the actors: a killed one leaves its temporary files behind.
        remove_leftovers({report.out_dir, *(t.dst.parent for t in tasks)})


def _fingerprint(config: CartoonConfig, engine_options: EngineOptions, run_options: FolderOptions, cartoonizer,
                 model: str, head_model: str | None) -> dict:
    """The settings fingerprint of the run: every object's declared settings (``engine_options`` as they run,
    resolved) and the model that runs, the caller's or the one every process will build."""
    from .. import weights

    if cartoonizer is not None:
        card, head_model = cartoonizer.model_card, cartoonizer.head_model
        head = weights.ensure_installed(head_model) if head_model else None
    else:
        model, pair_head = weights.resolve_pair(model)
        head_model = head_model or pair_head
        card = weights.ensure_installed(model)  # installs a known model once, before any worker starts
        head = weights.ensure_installed(head_model) if head_model and head_model != card.name else None
    return fingerprint(card, head, config, engine_options, run_options)


def _progress_bar(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="cartoonizing", unit="img", file=sys.stderr, disable=not enabled)


def _tqdm_echo(line: str) -> None:
    from tqdm.auto import tqdm

    tqdm.write(line, file=sys.stderr)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
