"""Folder runs: ``cartoonkit batch IN_DIR -o OUT_DIR``, pipelined, resumable, with a report.

:func:`run_folder` is the whole job; its parts are one module each:

* :mod:`.plan`: which files there are and where each output goes (also ``cartoonkit run``'s planner);
* :mod:`.state`: the settings fingerprint, journal and lock that make ``--resume`` safe;
* :mod:`.stream`: readers -> engine -> writers on one device, through ``Cartoonizer.process_many``;
* :mod:`.workers`: one process, or one spawned process per device, and the rules for which engines may split;
* :mod:`.gpu_codecs`: nvJPEG decoding and encoding on CUDA;
* :mod:`.ray_engine`: ``engine="ray"``: the same tasks on a pool of Ray actors, on this machine or a cluster;
* :mod:`.report`: what happened to every file, and the JSON report.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone

from .. import __version__
from ..config import CartoonConfig
from ..engine import resolve_device
from ..errors import ConfigError, OutputError
from ..formats import ImageLimits
from ..hardware import DEFAULT_BATCH_SIZE
from ..options import EngineOptions
from . import storage
from .account import KEPT
from .plan import inside, plan_outputs, remove_leftovers, scan_tree, split_done
from .report import REPORT_FILE, STAGES, FolderReport, ReportSink, record_failure
from .state import JOURNAL_FILE, LOCK_FILE, STATE_FILE, decide_mode, fingerprint, locked, write_json
from .storage import location
from .workers import MAX_WORKERS, process_devices, run_here

__all__ = ["JOURNAL_FILE", "LOCK_FILE", "REPORT_FILE", "STAGES", "STATE_FILE", "FolderReport", "run_folder"]

DEFAULT_MODEL = "whitebox"


def run_folder(in_dir: str | os.PathLike, out_dir: str | os.PathLike, config: CartoonConfig = CartoonConfig(), *,
               cartoonizer=None, model: str = DEFAULT_MODEL, head_model: str | None = None,
               engine_options: EngineOptions = EngineOptions(), devices: Sequence[str] | None = None,
               workers: int = 1, limits: ImageLimits | None = None, batch_size: int | None = None,
               io_threads: int | None = None, resume: bool = False, overwrite: bool = False,
               report_path: str | os.PathLike | None = None, progress: bool = True,
               echo: Callable[[str], None] | None = None, engine: str = "local", ray_address: str | None = None,
               actors: int | None = None, gpus_per_actor: float | None = None) -> FolderReport:
    """Cartoonize every image under ``in_dir`` (recursively) into ``out_dir``, keeping the layout.

    ``cartoonizer``: a warm :class:`~cartoonkit.pipeline.Cartoonizer` to use in this process (then ``model``,
    ``head_model`` and ``engine_options`` come from it); otherwise one is made from those. ``devices``: one
    process per device (``["cuda:0", "cuda:1"]``); ``workers``: that many CPU processes, the CPU threads
    divided between them (compiled and int8 engines run in one process). More than one process means Ray
    actors on this machine, as ``engine="ray"`` with ``actors`` (needs the ``ray`` extra). ``batch_size``:
    photos per engine call (default 8 on CUDA, 1 on the CPU). ``io_threads``: reader and writer threads each.
    ``resume``: continue the run recorded in ``out_dir`` (its settings must match); ``overwrite``: replace existing
    outputs. ``report_path``: where the JSON report goes (default ``out_dir/cartoonkit-report.json``).
    ``echo`` receives one line per failed file as it happens (default: above the progress bar, on stderr).

    ``engine="ray"`` runs the files on Ray actors (:mod:`.ray_engine`, needs the ``ray`` extra): ``ray_address``
    ``None`` starts a Ray instance on this machine for the run (or uses the one this process started),
    ``"auto"``/``"HOST:PORT"`` joins a cluster; ``actors`` (default one per GPU, or one per node on CPUs) and
    ``gpus_per_actor`` (default 1 when the device is CUDA). Planning, resume and the report are the same.

    Raises :class:`~cartoonkit.errors.CartoonkitError` when the run cannot start (bad setting, unusable
    folder, settings differ from the recorded run, another run holds the folder). Per-file problems and a
    stop mid-way are in the returned report instead.
    """
    wall_start = time.perf_counter()
    started = _now()
    in_dir, out_dir = location(in_dir), location(out_dir)  # a local folder, or object storage (storage.py)
    echo = echo or _tqdm_echo
    _check_count("workers", workers, MAX_WORKERS)
    if io_threads is not None:
        _check_count("io_threads", io_threads, 64)
    if batch_size is not None:
        _check_count("batch_size", batch_size, 4096)
    if engine not in ("local", "ray"):
        raise ConfigError(f"engine={engine!r}: must be local or ray")
    ray_settings = None
    if engine == "ray":
        from .ray_engine import RaySettings, require_ray

        if cartoonizer is not None or devices or workers != 1:
            raise ConfigError("engine='ray': the actors build their own models and Ray places them; "
                              "give actors (and gpus_per_actor) instead of cartoonizer, devices or workers")
        ray_settings = RaySettings(ray_address, actors, gpus_per_actor)
        ray_settings.check()
        require_ray()  # before the model is installed: a missing extra is the first thing to hear about
    elif ray_address is not None or actors is not None or gpus_per_actor is not None:
        raise ConfigError("ray_address, actors and gpus_per_actor (--address, --actors, --gpus-per-actor) need "
                          "engine='ray' (--engine ray)")
    elif devices or workers != 1:
        ray_settings = _processes_on_ray(engine_options, devices, workers, cartoonizer)
    if not storage.is_folder(in_dir):
        raise ConfigError(f"{in_dir}: no such folder; `batch` takes one folder (use `run` for files)")
    if storage.same_place(in_dir, out_dir):
        raise ConfigError(f"-o {out_dir}: is the input folder; choose another output folder")

    # The device of this process's stream, or the kind of device the actors run on.
    if ray_settings is not None:
        import torch

        device = torch.device(ray_settings.device_type(engine_options))
    else:
        device = cartoonizer.device if cartoonizer is not None else resolve_device(engine_options.device)
    limits = limits or (cartoonizer.limits if cartoonizer is not None else ImageLimits())
    settings = _fingerprint(config, cartoonizer, model, head_model, engine_options, device,
                            int8_ok=ray_settings is None)
    batch_size = batch_size or DEFAULT_BATCH_SIZE["cuda" if device.type == "cuda" else "cpu"]
    io_threads = io_threads or max(1, min(4, os.cpu_count() or 1))

    storage.prepare_output(out_dir)
    report = FolderReport(in_dir=in_dir, out_dir=out_dir, settings=settings, devices=[str(device)],
                          engine="ray" if ray_settings else "local", batch_size=batch_size, started=started)

    def fail(name: str, reason: str) -> None:
        record_failure(report, echo, name, reason)

    with locked(out_dir):
        mode, journal_keys, run_id, report.resumed = decide_mode(out_dir, settings, resume, overwrite)
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
        report_file = location(report_path) if report_path else out_dir / REPORT_FILE
        try:
            write_json(report_file, report.to_json())
            report.report_path = report_file
        except OutputError as exc:
            echo(f"error: the report was not written: {exc}")
    return report


def _processes_on_ray(engine_options, devices, workers, cartoonizer):
    """``workers`` CPU processes, or one process per device, on this machine: Ray actors on a Ray started for
    the run (the one code path for more than one process: docs/scaling.md says why the in-house pool went).
    The rules for which engines may split are the local ones (:func:`.workers.process_devices`)."""
    from .ray_engine import RaySettings, require_ray

    plan = process_devices(engine_options, devices, workers, cartoonizer)
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
    from .ray_engine import connected, pool_shape, run_ray

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


def _fingerprint(config, cartoonizer, model, head_model, engine_options, device, int8_ok: bool) -> dict:
    """The settings fingerprint from the engine that runs: the caller's, or the one every process will build
    (the rule the engine applies: :meth:`EngineOptions.resolved`, then its padding)."""
    from .. import weights

    if cartoonizer is not None:
        engine = cartoonizer.engine
        head = weights.ensure_installed(cartoonizer.head_model) if cartoonizer.head_model else None
        return fingerprint(config, cartoonizer.model_card, {engine.precision}, engine.bucket, head)
    model, pair_head = weights.resolve_pair(model)
    head_model = head_model or pair_head
    card = weights.ensure_installed(model)  # installs a known model once, before any worker starts
    head = weights.ensure_installed(head_model) if head_model and head_model != card.name else None
    resolved = engine_options.resolved(device.type, int8_ok=int8_ok)
    return fingerprint(config, card, {resolved.precision}, resolved.padding, head)


def _check_count(name: str, value, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
        raise ConfigError(f"{name}={value!r}: must be an integer from 1 to {high}")


def _progress_bar(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="cartoonizing", unit="img", file=sys.stderr, disable=not enabled)


def _tqdm_echo(line: str) -> None:
    from tqdm.auto import tqdm

    tqdm.write(line, file=sys.stderr)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
