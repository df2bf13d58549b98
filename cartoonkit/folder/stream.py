"""The folder stream on one device: stages joined by bounded queues, so reading, decoding, the network,
encoding and writing overlap, and memory stays bounded whatever the size of the folder::

    readers (threads)  read the file; decode it with Pillow (on CUDA, plain JPEGs are left for
                       nvJPEG); on the CPU also prepare it for the network ........ -> ready queue
    engine (caller)    on CUDA: decode the pulled JPEGs together with nvJPEG, copy the others
                       from pinned memory, prepare on the GPU; group photos by bucket shape; run
                       each full group, and the fullest partial one whenever the ready queue runs
                       dry (never waiting for a batch to fill), through Cartoonizer.process_many
                       ......................................................... -> finishing queue
    finisher (CUDA)    wait for the batch's "done" event; encode JPEG output with nvJPEG, copy
                       the rest to pinned memory on its own stream (on the CPU the engine thread
                       does this step itself) ............................................ -> write queue
    writers (threads)  encode (Pillow) what is waiting, write it to hidden temporary files ... -> commit queue
    committer          flush every group staged meanwhile at once (one syncfs), rename them into place,
                       sync the folders, note the outputs in the journal, report them done

On CUDA the engine thread only queues work: it runs on its own CUDA stream, never synchronises (stage timings
are host time, :func:`~cartoonkit.timing.host_time_only`), and records an event after each batch. So while
the device runs batch k, the engine thread decodes and queues batch k+1, and the finisher encodes and copies
batch k-1; the finishing queue holds at most two batches, which bounds the device memory in flight. The
report's ``network`` seconds on CUDA are the device's, from CUDA events around each batch.

Every output is written to a hidden temporary file and renamed (in object storage: uploaded, and there only
when the upload completes), so a kill (even ``kill -9``) leaves whole files or none. Durability is paid per
commit, not per file: while the committer flushes, the writers stage the next files, so the more files arrive
the more each flush covers (group commit, as databases do with their logs). A bad input is reported
with its reason and the stream carries on; an output folder that takes no more files (disk full, read-only)
stops it cleanly.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .. import gpu_codecs
from ..config import CartoonConfig
from ..errors import InvalidImageError, OutputError
from ..fileio import commit, staged
from ..formats import ImageLimits
from ..imageencode import encode_image
from ..imageio import DecodedImage, read_image
from ..pipeline import FACE_STAGES, Cartoonizer, CartoonResult, NetworkInput
from ..timing import host_time_only
from . import storage
from .plan import Task
from .reasons import is_fatal, strip_name, unexpected
from .report import STAGES
from .state import Journal

log = logging.getLogger(__name__)

_READERS_DONE = object()
_FINISHER_DONE = object()
_WRITERS_DONE = object()
_COMMITTER_DONE = object()
# Batches queued on the device ahead of the finisher: enough to keep the device busy while one is finished,
# few enough that the memory they hold stays small.
BATCHES_IN_FLIGHT = 2
# A writer writes what it has encoded as one group (one flush of the file system, not one fsync per file), up to
# this many files or bytes: enough to spread the flush over many small outputs, little enough that the files of a
# group are reported done soon.
WRITE_GROUP_FILES = 32
WRITE_GROUP_BYTES = 64 * 1024**2


@dataclass(eq=False)
class _Item:
    """One photo on its way to the engine stage."""

    task: Task
    error: str | None = None
    jpeg: torch.Tensor | None = None          # CUDA: the file's bytes, for nvJPEG
    decoded: DecodedImage | None = None       # CUDA: decoded on the CPU, in pinned memory
    prepared: NetworkInput | None = None      # ready for the network, on the engine's device


@dataclass(eq=False)
class _Batch:
    """One engine call's photos and results on their way to the finisher (on CUDA, possibly still computing)."""

    items: list[_Item]
    results: list[CartoonResult]
    started: Any = None  # CUDA events around the batch's device work, or None
    done: Any = None


@dataclass(eq=False)
class _Output:
    """One cartoon on its way to a writer: pixels to encode, or bytes already encoded."""

    task: Task
    rgb: torch.Tensor | None
    alpha: torch.Tensor | None
    data: bytes | None
    ready: Any  # a CUDA event to wait for before reading ``rgb``, or None
    notes: tuple[str, ...]


class Stream:
    """Readers -> engine (the calling thread) -> writers, on the device of one :class:`Cartoonizer`."""

    def __init__(self, cartoonizer: Cartoonizer, config: CartoonConfig, tasks: Sequence[Task], sink, *,
                 batch_size: int, io_threads: int, journal: Journal | None, stop, limits: ImageLimits,
                 finisher: bool | None = None):
        """``finisher``: finish batches (encode, copy to the host) in a thread of their own; default: on CUDA,
        where it lets the device's work overlap; on the CPU the engine thread does it (one hand-off less)."""
        self.ck, self.config, self.sink, self.journal = cartoonizer, config, sink, journal
        self.device = cartoonizer.device
        self.cuda = self.device.type == "cuda"
        self.use_finisher = self.cuda if finisher is None else finisher
        self.finishing: queue.Queue = queue.Queue(maxsize=BATCHES_IN_FLIGHT)
        # The engine queues its work on one stream, the finisher copies on another; both made in run().
        self.compute_stream = self.copy_stream = None
        self.limits = limits
        self.batch_size = batch_size
        self.n_readers = self.n_writers = io_threads
        self.stop = stop
        self.todo: queue.Queue = queue.Queue()
        for task in tasks:
            self.todo.put(task)
        # Bounded: readers wait when the engine is behind, the engine when the writers are.
        self.ready: queue.Queue = queue.Queue(maxsize=max(2 * batch_size, self.n_readers + 1))
        self.outputs: queue.Queue = queue.Queue(maxsize=max(2 * batch_size, self.n_writers + 1))
        self.committing: queue.Queue = queue.Queue(maxsize=4 * self.n_writers)  # staged groups of files
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
        finisher = threading.Thread(target=self._finisher, name="cartoonkit-finisher", daemon=True)
        committer = threading.Thread(target=self._committer, name="cartoonkit-committer", daemon=True)
        if self.cuda:
            self.compute_stream = torch.cuda.Stream(self.device)
            self.copy_stream = torch.cuda.Stream(self.device)
        for thread in readers + writers + [committer] + ([finisher] if self.use_finisher else []):
            thread.start()
        try:
            with self._on_device(self.compute_stream), host_time_only():
                self._engine_loop()
        except KeyboardInterrupt:
            self.interrupted = True
            self.stop.set()
        finally:
            self._halt.set()
            if self.use_finisher:
                self.finishing.put(_FINISHER_DONE)  # the finisher always drains, so this never blocks for long
                finisher.join()
            for _ in writers:
                self.outputs.put(_WRITERS_DONE)  # writers always drain, so this never blocks for long
            for thread in writers:
                thread.join()
            self.committing.put(_COMMITTER_DONE)  # after the writers: every staged group is queued before it
            for thread in [committer] + readers:
                thread.join()

    # ----------------------------------------------------------------- helpers

    def _stopping(self) -> bool:
        return self.stop.is_set()

    def _on_device(self, stream):
        """This thread's work on the stream's device and stream (on the CPU: nothing to set)."""
        if not self.cuda:
            return contextlib.nullcontext()
        stack = contextlib.ExitStack()
        stack.enter_context(torch.cuda.device(self.device))
        stack.enter_context(torch.cuda.stream(stream))
        return stack

    def _event(self):
        """A CUDA event recorded now on this thread's stream (timed), or None on the CPU."""
        if not self.cuda:
            return None
        event = torch.cuda.Event(enable_timing=True)
        event.record()
        return event

    @contextlib.contextmanager
    def _timed(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self._add_seconds({stage: time.perf_counter() - start})

    def _add_seconds(self, timings: dict[str, float]) -> None:
        with self._lock:
            for stage, seconds in timings.items():
                stage = "faces" if stage in FACE_STAGES else stage
                self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds

    def _put(self, target: queue.Queue, item, *, after_halt: bool = False) -> bool:
        """Put, waiting while the queue is full, unless the run is stopping (or, unless ``after_halt``, the engine
        loop is over: the finisher still delivers what the engine queued before it ended)."""
        while True:
            try:
                target.put(item, timeout=0.1)
                return True
            except queue.Full:
                if self._stopping() or (self._halt.is_set() and not after_halt):
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
                data = storage.read_input(task.src, task.name, self.limits)
            if self.cuda and gpu_codecs.plain_jpeg(data, task.name, self.limits):
                item.jpeg = torch.frombuffer(bytearray(data), dtype=torch.uint8)  # decoded on the GPU, in batches
                return item
            with self._timed("decode"):
                decoded = read_image(data, name=task.name, limits=self.limits)
            if self.cuda:
                item.decoded = gpu_codecs.pinned(decoded)
            else:
                item.prepared = self.ck.prepare(decoded, self.config)  # its time goes with the result
        except InvalidImageError as exc:
            item.error = strip_name(str(exc), task.name)
        except Exception as exc:  # a bug must not cost the user the rest of the folder
            item.error = unexpected(exc)
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
                pending.setdefault(self.ck.bucket_of(item.prepared.photo), []).append(item)
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
        """Finish what the readers left for the device (CUDA: decode JPEGs, copy, prepare); report failures."""
        jpegs = [item for item in items if item.error is None and item.jpeg is not None]
        if jpegs:
            self._decode_on_gpu(jpegs)
        good = []
        for item in items:
            if item.error is None and item.prepared is None:
                try:
                    item.prepared = self.ck.prepare(item.decoded, self.config)
                    item.decoded = None
                except Exception as exc:
                    item.error = unexpected(exc)
            if item.error is not None:
                self.sink.failed(item.task, item.error)
            else:
                good.append(item)
        return good

    def _decode_on_gpu(self, jpegs: list[_Item]) -> None:
        """nvJPEG-decode a list of JPEGs in one call; on any error decode those files with Pillow instead."""
        with self._timed("decode"):
            try:
                decoded = gpu_codecs.decode_jpegs([item.jpeg for item in jpegs], [item.task.name for item in jpegs],
                                                  self.device)
                for item, image in zip(jpegs, decoded, strict=True):
                    item.decoded = image
                with self._lock:
                    self.gpu["decoded"] += len(jpegs)
            except Exception as exc:  # nvJPEG does not take every JPEG (some progressive or 12-bit files)
                log.debug("nvJPEG could not decode a batch (%s); using the CPU decoder", exc)
                for item in jpegs:
                    try:
                        item.decoded = read_image(item.jpeg.numpy().tobytes(), name=item.task.name,
                                                  limits=self.limits)
                    except InvalidImageError as error:
                        item.error = strip_name(str(error), item.task.name)
            for item in jpegs:
                item.jpeg = None

    def _run(self, items: list[_Item]) -> None:
        """Photos of one bucket shape through the one chain, then on to the finisher (queued on CUDA)."""
        started = self._event()
        try:  # the faces of the whole batch share head-network calls, at least 8 crops per call
            results = self.ck.process_many([item.prepared for item in items], self.config,
                                           max_batch=max(8, len(items)))
        except Exception as exc:
            if len(items) > 1:  # find the photo that fails; the others still go through
                for item in items:
                    self._run([item])
                return
            self.sink.failed(items[0].task, _engine_failure(exc, items[0].prepared.photo, self.device))
            return
        for item in items:
            item.prepared = None  # the results hold what is still needed
        with self._lock:
            self.batches[len(items)] += 1
        batch = _Batch(items, results, started, self._event())
        if self.use_finisher:
            self._put(self.finishing, batch)
        else:
            self._finish(batch)

    # ----------------------------------------------------------------- finisher

    def _finisher(self) -> None:
        with self._on_device(self.copy_stream):
            while (batch := self.finishing.get()) is not _FINISHER_DONE:
                self._finish(batch)

    def _finish(self, batch: _Batch) -> None:
        """A computed batch to the writers: on CUDA wait for its device work, encode JPEGs with nvJPEG and copy
        the rest to pinned host memory (on this thread's stream); report a failure per photo."""
        try:
            outputs = self._outputs(batch)
        except Exception as exc:  # e.g. an error the device raised while it ran the batch
            for item in batch.items:
                self.sink.failed(item.task, _engine_failure(exc, None, self.device))
            return
        for output in outputs:
            if not self._put(self.outputs, output, after_halt=True):
                return

    def _outputs(self, batch: _Batch) -> list[_Output]:
        results = batch.results
        for result in results:
            timings = result.timings
            if batch.done is not None:  # network time on CUDA: the device's, below, not the host's queueing
                timings = {stage: s for stage, s in timings.items() if stage != "network"}
            self._add_seconds(timings)
        rgbs = [result.rgb for result in results]
        encoded: list[bytes | None] = [None] * len(results)
        ready = None
        if batch.done is not None:
            batch.done.synchronize()  # nvJPEG encodes on a stream of its own, which does not wait for ours
            self._add_seconds({"network": batch.started.elapsed_time(batch.done) / 1000})
            if self.config.format == "jpg":
                with self._timed("encode"):
                    encoded = gpu_codecs.encode_jpegs(rgbs, self.config.quality)
                with self._lock:
                    self.gpu["encoded"] += sum(data is not None for data in encoded)
            with self._timed("postprocess"):
                rgbs = [gpu_codecs.to_pinned_host(rgb) if data is None else None
                        for rgb, data in zip(rgbs, encoded, strict=True)]
                ready = self._event()
        return [_Output(item.task, rgb, result.alpha, data, ready, result.notes)
                for item, result, rgb, data in zip(batch.items, results, rgbs, encoded, strict=True)]

    # ----------------------------------------------------------------- writers

    def _writer(self) -> None:
        """Encode what is waiting, stage it as one group of temporary files (:func:`~cartoonkit.fileio.staged`) for
        the committer; repeat."""
        finished = False
        while not finished:
            group: list[tuple[_Output, bytes]] = []
            size = 0
            output = self.outputs.get()  # wait for the first; take more only while they are already there
            while True:
                if output is _WRITERS_DONE:
                    finished = True
                    break
                if not self._fatal.is_set():  # else the folder takes no more files: leave the rest to --resume
                    data = self._encoded(output)
                    if data is not None:
                        group.append((output, data))
                        size += len(data)
                if len(group) >= WRITE_GROUP_FILES or size >= WRITE_GROUP_BYTES:
                    break
                try:
                    output = self.outputs.get_nowait()
                except queue.Empty:
                    break
            if group:
                self._stage(group)

    def _encoded(self, output: _Output) -> bytes | None:
        """The output's file bytes (encoded here unless the engine did it), or ``None`` after reporting why not."""
        if output.data is not None:
            return output.data
        try:
            if output.ready is not None:
                output.ready.synchronize()  # the copy from the GPU has landed
            with self._timed("encode"):
                return encode_image(output.rgb, output.alpha, format=self.config.format, quality=self.config.quality)
        except Exception as exc:
            self.sink.failed(output.task, unexpected(exc))
            return None

    def _stage(self, group: list[tuple[_Output, bytes]]) -> None:
        """Write the group's temporary files and queue them for the committer; a full or read-only folder stops
        the run (the files staged before it are still committed, whole)."""
        written: list[_Output] = []
        with self._timed("write"), staged() as files:
            for output, data in group:
                if self._fatal.is_set():
                    break  # the rest is left to --resume
                try:
                    storage.write_output(output.task.dst, data)  # object storage: uploaded now, nothing staged
                    written.append(output)
                except Exception as exc:
                    self._write_failed(output.task, exc)
        if written:
            self.committing.put((written, files))  # waits while the committer is behind: bounded

    # ----------------------------------------------------------------- committer

    def _committer(self) -> None:
        """Commit every staged group waiting, all together (:func:`~cartoonkit.fileio.commit`: one flush), then
        journal and report each file; repeat until the writers are done."""
        finished = False
        while not finished:
            waiting = [self.committing.get()]
            with contextlib.suppress(queue.Empty):
                while True:
                    waiting.append(self.committing.get_nowait())
            if waiting[-1] is _COMMITTER_DONE:  # the writers put nothing after it
                finished = True
                waiting.pop()
            if not waiting:
                continue
            try:
                with self._timed("write"):
                    commit(*(files for _, files in waiting))
            except Exception as exc:  # commit reports OSErrors per file; anything else fails the files here
                for written, _ in waiting:
                    for output in written:
                        self._write_failed(output.task, exc)
                continue
            for written, files in waiting:
                self._report_placed(written, files.failed)

    def _report_placed(self, written: list[_Output], failed: dict) -> None:
        for output in written:
            task = output.task
            try:
                if (error := failed.get(str(task.dst))) is not None:
                    raise error
                if self.journal is not None:
                    self.journal.add(task.key)
            except Exception as exc:
                self._write_failed(task, exc)
                continue
            for note in output.notes:
                self.sink.note(task, note)
            self.sink.done(task)

    def _write_failed(self, task: Task, exc: Exception) -> None:
        if not isinstance(exc, OutputError):
            self.sink.failed(task, unexpected(exc))
        elif is_fatal(exc):
            with self._lock:
                first = not self._fatal.is_set()
                self._fatal.set()
            self.stop.set()
            if first:
                self.sink.fatal(str(exc))
        else:
            self.sink.failed(task, str(exc))


def _engine_failure(exc: Exception, photo: torch.Tensor | None, device: torch.device) -> str:
    if isinstance(exc, torch.OutOfMemoryError) and photo is not None:
        height, width = photo.shape[-2:]
        return f"out of memory on {device} at {width}x{height}; try a lower --resolution"
    return unexpected(exc)
