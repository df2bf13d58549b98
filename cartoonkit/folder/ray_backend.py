"""``cartoonkit batch --backend ray``: the folder run's files cartoonized by a pool of Ray actors, on this machine
or across a cluster.

The driver (this process) keeps everything that decides *what* is done: listing, the skip-what-is-done rule,
the settings fingerprint, the lock, the journal's path and the report are :func:`~cartoonkit.folder.run_folder`'s
own. Only the tasks travel: a Ray Dataset of ``(src, dst, key)`` strings, ``map_batches`` over a fixed pool of
actors, each holding one warm :class:`~cartoonkit.pipeline.Cartoonizer`. Each actor call runs the local
engine's stream (:mod:`.stream`) on its files: it reads, decodes, cartoonizes, encodes and writes the outputs
atomically itself, and returns one small row per file (done, failed with its reason, or the output folder is
unusable). So the object store carries paths and status rows, never
decoded frames, and a bad file is a row in the report rather than a failed dataset.

Faults: Ray Data creates pool actors with ``max_restarts=-1`` and ``max_task_retries=-1`` (its default since
2.4x; ``tests/test_ray.py`` kills an actor to hold it to that): an actor that dies (killed,
out of host memory) is started again and its unfinished call is run again, by it or another actor. Rerunning a
call rewrites the same bytes through a temporary file and a rename, so an output is whole or absent, never
half-written, and the report counts each file once because only the retried call's rows reach the driver. The
temporary files a killed actor leaves are removed at the end (and by any later run). A killed driver leaves
whole files, which ``--resume`` keeps; its actors must not go on writing once it is gone, because the folder's
lock went with it and a resumed run may be planning the same folder. Ray stops a dead driver's actors, but
only seconds later (measured: 4 more outputs after a ``kill -9``), so an actor on the driver's own machine
watches the driver (:class:`DriverWatch`, every 50 ms) and exits when it is gone; at most a write in flight
lands after the kill.

Files are paths every actor opens as the stream does (:mod:`.storage`): a local folder on one machine, a shared
file system on a cluster, or object storage (``s3://``, ``gs://``, through ``pyarrow.fs``), where each actor
reads and uploads its own files. A task row carries the whole URI (credentials and options included), so an
actor opens the same store the driver planned.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import CartoonConfig
from ..errors import CartoonkitError, ConfigError
from ..formats import ImageLimits
from ..options import EngineOptions
from .plan import Task
from .report import FolderReport
from .storage import describe, location

log = logging.getLogger(__name__)

RAY_EXTRA = "ray"
LOCAL_OBJECT_STORE_BYTES = 128 * 1024**2
"""The object store of a Ray instance started for one run: it holds paths and status rows only, so a small one
saves the memory Ray would otherwise reserve (30 % of RAM by default)."""
ROWS_PER_CALL = 4
"""Files per actor call at the least: enough that Ray's per-call cost (a few ms) is small against a photo's, few
enough that an actor killed mid-call costs little work done twice."""


def require_ray(purpose: str = "--backend ray"):
    """``ray`` with Ray Data, or a :class:`~cartoonkit.errors.MissingDependencyError` naming the extra."""
    from ..extras import require

    ray = require("ray", purpose, RAY_EXTRA)
    require("ray.data", purpose, RAY_EXTRA)
    return ray


@dataclass(frozen=True)
class RaySettings:
    """Where and how wide: ``address`` (``None``: start a Ray instance for this run, or use the one this process
    already started; ``auto`` or ``HOST:PORT``: join a running cluster), ``actors`` (``None``: one per GPU on
    CUDA, one per node on CPUs) and ``gpus_per_actor`` (``None``: 1 when the engine's device is CUDA, else 0).
    ``visible_gpus`` (``"1,3"``, from ``--devices cuda:1,cuda:3``): the GPUs a Ray started for this run may
    use; a Ray already running keeps the GPUs it has."""

    address: str | None = None
    actors: int | None = None
    gpus_per_actor: float | None = None
    visible_gpus: str | None = None

    def device_type(self, engine_options: EngineOptions) -> str:
        """``cuda`` or ``cpu``: what the actors run on. The driver may have no GPU while the cluster has some, so
        ``gpus_per_actor`` decides when given; otherwise the device named, ``auto`` meaning what the driver has."""
        if self.gpus_per_actor is not None:
            return "cuda" if self.gpus_per_actor > 0 else "cpu"
        if engine_options.device == "auto":
            import torch

            return "cuda" if torch.cuda.is_available() else "cpu"
        return "cuda" if engine_options.device.startswith("cuda") else "cpu"

    def check(self) -> None:
        """A cluster address that nobody answers at fails here, before the folder is planned and the bar drawn
        (the numbers were checked by :class:`~cartoonkit.run_options.FolderOptions`)."""
        if self.address is not None:
            _reachable(self.address)


class DriverWatch:
    """Whether the driver that started this run still lives, seen from an actor: known on the driver's machine
    (its pid and start time, so a reused pid does not count); elsewhere Ray's own job clean-up answers."""

    def __init__(self, host: str, pid: int, started: float):
        self.host, self.pid, self.started = host, pid, started

    @classmethod
    def here(cls) -> DriverWatch:
        import psutil

        return cls(socket.gethostname(), os.getpid(), psutil.Process().create_time())

    def alive(self) -> bool:
        if socket.gethostname() != self.host:
            return True
        import psutil

        try:
            process = psutil.Process(self.pid)
            return process.create_time() == self.started and process.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False


@contextlib.contextmanager
def connected(settings: RaySettings):
    """Ray ready for this run; a Ray instance started here is shut down at the end, one joined or already
    running in this process is left as it was."""
    ray = require_ray()
    started = False
    if not ray.is_initialized():
        common = {"log_to_driver": False, "logging_level": logging.WARNING, "configure_logging": True}
        try:
            if settings.address is None:
                with _visible_gpus(settings.visible_gpus):  # the raylet reads it once, when it starts
                    ray.init(num_cpus=os.cpu_count() or 1, object_store_memory=LOCAL_OBJECT_STORE_BYTES,
                             include_dashboard=False, **common)
            else:
                ray.init(address=settings.address, **common)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = f"the Ray cluster at {settings.address}" if settings.address else "a local Ray instance"
            raise ConfigError(f"--backend ray: cannot start or reach {where}: {exc}") from exc
        started = True
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the run's own bar counts images; Ray's per-operator bars would clutter
    context.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)  # "progress bars disabled": we know
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


@contextlib.contextmanager
def _visible_gpus(gpus: str | None):
    if gpus is None:
        yield
        return
    before = os.environ.get("CUDA_VISIBLE_DEVICES")
    os.environ["CUDA_VISIBLE_DEVICES"] = gpus
    try:
        yield
    finally:
        if before is None:
            del os.environ["CUDA_VISIBLE_DEVICES"]
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = before


def _reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail fast on a HOST:PORT nobody listens on: ray.init retries such an address for many minutes."""
    if address == "auto" or address.startswith("ray://"):
        return
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout_s):
            pass
    except ValueError:
        raise ConfigError(f"--address {address}: expected auto or HOST:PORT") from None
    except OSError as exc:
        raise ConfigError(f"--address {address}: no Ray cluster answers there ({exc.strerror or exc}); start one "
                          "with `ray start --head`, or leave --address out to start Ray for this run") from None


def pool_shape(ray, settings: RaySettings, device_type: str) -> tuple[int, float, float]:
    """``(actors, cpus per actor, gpus per actor)`` for the cluster Ray sees now."""
    resources = ray.cluster_resources()
    cpus, gpus = int(resources.get("CPU", 1)), resources.get("GPU", 0)
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    smallest = min((int(n["Resources"].get("CPU", 1)) for n in nodes), default=cpus)
    if device_type == "cuda":
        per_actor = 1.0 if settings.gpus_per_actor is None else float(settings.gpus_per_actor)
        if gpus < per_actor:
            raise ConfigError(f"--backend ray on CUDA: the Ray cluster has {gpus:g} GPU(s), each actor needs "
                              f"{per_actor:g}; use --gpus-per-actor 0 for CPU actors")
        actors = settings.actors or max(1, int(gpus // per_actor))
        # The cores go to the GPU actors' readers and writers: PNG encoding alone takes ~155 ms of a core per
        # 1024-px photo (docs/scaling.md), so a GPU needs many of them.
        return actors, float(max(1, min(smallest, cpus // actors))), per_actor
    actors = settings.actors or max(1, len(nodes))
    # Each actor's torch threads get its share of the cores; no more than one node has, or it cannot be placed.
    cpu_share = max(1, min(smallest, cpus // actors))
    return actors, float(cpu_share), 0.0


class CartoonActor:
    """One warm Cartoonizer in a Ray actor. Each call runs the local backend's :class:`~.stream.Stream` on its
    files (readers, the engine, writers; on CUDA nvJPEG and pinned memory), so the per-file work, and the bytes
    written, are the local backend's; what the stream reports comes back as one row per file."""

    def __init__(self, model: str, head_model: str | None, engine_options: EngineOptions, limits: ImageLimits,
                 config: CartoonConfig, batch_size: int, threads: int, io_threads: int, journal: str | None,
                 driver: DriverWatch):
        import torch

        from .. import runtime
        from ..pipeline import Cartoonizer

        device = torch.device(engine_options.device)
        if device.type == "cuda":
            torch.cuda.set_device(device)
        runtime.configure_torch(device, threads=threads)
        self.ck = Cartoonizer.from_pretrained(model, engine_options=engine_options, head_model=head_model,
                                              limits=limits)
        self.config, self.limits, self.batch_size, self.io_threads = config, limits, batch_size, io_threads
        self.journal = location(journal) if journal else None
        threading.Thread(target=self._watch, args=(driver,), name="cartoonkit-driver-watch", daemon=True).start()

    @staticmethod
    def _watch(driver: DriverWatch) -> None:
        while driver.alive():
            time.sleep(0.05)
        # The folder's lock went with the driver and a resumed run may be planning the folder: write nothing more.
        # A write cut here leaves a hidden temporary file, which the next run removes.
        os._exit(1)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        from .state import Journal
        from .stream import Stream

        tasks = [Task(src=location(str(s)), dst=location(str(d)), key=str(k))
                 for k, s, d in zip(batch["key"], batch["src"], batch["dst"], strict=True)]
        rows = _Rows()
        with Journal.open(self.journal) as journal:
            stream = Stream(self.ck, self.config, tasks, rows, batch_size=self.batch_size,
                            io_threads=self.io_threads, journal=journal, stop=threading.Event(), limits=self.limits)
            stream.run()
        # The call's stage seconds, engine batch sizes and GPU codec counts ride on its first row, as JSON: one
        # flat string column whatever the stages, which Arrow stores without a schema of its own.
        stats = json.dumps({"seconds": stream.seconds, "batches": {str(k): v for k, v in stream.batches.items()},
                            "gpu": dict(stream.gpu)})
        out = rows.out
        out["stats"] = [stats] + [""] * (len(out["key"]) - 1) if out["key"] else []
        return out


class _Rows:
    """The stream's sink inside an actor: its events as the columns of the call's result."""

    def __init__(self):
        self.out: dict[str, list] = {"key": [], "status": [], "reason": [], "notes": []}
        self.lock = threading.Lock()
        self.notes: dict[str, list[str]] = {}

    def _row(self, key: str, status: str, reason: str = "") -> None:
        with self.lock:
            self.out["key"].append(key)
            self.out["status"].append(status)
            self.out["reason"].append(reason)
            self.out["notes"].append("\n".join(self.notes.pop(key, [])))

    def done(self, task: Task) -> None:
        self._row(task.key, "done")

    def failed(self, task: Task, reason: str) -> None:
        self._row(task.key, "failed", reason)

    def note(self, task: Task, note: str) -> None:
        with self.lock:
            self.notes.setdefault(task.key, []).append(note)

    def fatal(self, reason: str) -> None:
        self._row("", "fatal", reason)  # the folder takes no more files; the call's unreported files stay to do


def run_ray(tasks: list[Task], report: FolderReport, sink, *, settings: RaySettings, ray, model: str,
            head_model: str | None, engine_options: EngineOptions, limits: ImageLimits, config: CartoonConfig,
            batch_size: int, journal: Path | None, device_type: str, shape: tuple[int, float, float]) -> None:
    """Cartoonize ``tasks`` on the actor pool; every file's outcome goes to ``sink`` as its row arrives.
    ``engine_options``: as every actor runs them (:meth:`~cartoonkit.options.EngineOptions.for_processes`)."""
    actors, cpus, gpus = shape
    by_key = {t.key: t for t in tasks}
    # On CUDA a call's stream overlaps reading with the GPU only inside the call: give it several batches.
    rows_per_call = 4 if device_type == "cuda" else 1
    dataset = ray.data.from_items([{"key": t.key, "src": describe(t.src), "dst": describe(t.dst)}
                                   for t in tasks],
                                  override_num_blocks=max(1, min(len(tasks), actors * 8)))
    results = dataset.map_batches(
        CartoonActor, fn_constructor_kwargs={
            "model": model, "head_model": head_model, "engine_options": engine_options, "limits": limits,
            "config": config, "batch_size": batch_size, "threads": max(1, int(cpus)),
            "io_threads": max(1, min(16 if device_type == "cuda" else 4, int(cpus))),
            "journal": describe(journal) if journal else None, "driver": DriverWatch.here()},
        batch_size=max(ROWS_PER_CALL, rows_per_call * batch_size), batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=cpus, num_gpus=gpus or None)
    seen: set[str] = set()
    try:
        for batch in results.iter_batches(batch_size=None, batch_format="numpy"):
            for key, status, reason, notes, stats in zip(batch["key"], batch["status"], batch["reason"],
                                                         batch["notes"], batch["stats"], strict=True):
                if stats:
                    stats = json.loads(str(stats))
                    report.merge(stats["seconds"], Counter({int(k): v for k, v in stats["batches"].items()}),
                                 Counter(stats["gpu"]))
                key = str(key)
                if status == "fatal":  # the output folder takes no more files: stop, --resume does the rest
                    sink.fatal(str(reason))
                    continue
                if key in seen:  # cannot happen with Ray's retries (one call's rows arrive once); never count twice
                    continue
                seen.add(key)
                task = by_key[key]
                if status == "done":
                    for note in str(notes).split("\n") if notes else ():
                        sink.note(task, note)
                    sink.done(task)
                else:
                    sink.failed(task, str(reason))
            if report.stopped:
                break
    except KeyboardInterrupt:
        report.interrupted = True
    except CartoonkitError:
        raise
    except Exception as exc:  # the cluster itself failed (a node lost for good, Ray shut down)
        if report.stopped is None:
            report.stopped = f"the Ray backend stopped: {type(exc).__name__}: {str(exc).splitlines()[0]}"
