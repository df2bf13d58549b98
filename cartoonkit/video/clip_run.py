"""What the CPU run (:mod:`~cartoonkit.video.pipeline`) and the device run (:mod:`~cartoonkit.video.device_run`)
share, so that the guarantees they both give are written once: the decoder thread, the hand-offs between threads
that never block forever, the writer thread's loop, the output file opened at the first frame, and what happens to
each written frame (the measuring, ``on_frame``, the encoding).

A run subclasses :class:`ClipRun`, sets the attributes its docstring names, and implements ``_process_batch`` (the
network's work on a batch of frames, handed to ``_to_writer``) and ``_write_item`` (what the writer does with one
item of ``_to_writer``).
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import OutputError
from .decode import Frame, decode_frames
from .encode import VideoWriter
from .flow import METRIC_PRESET, gray, motion, psnr, warping_error
from .probe import expected_frames
from .report import Flicker

END = object()
"""Put after a stream's last item: the stage after it finishes."""
QUEUE_FRAMES = 4   # decoded frames waiting beyond a batch: enough to keep the network fed


@dataclass
class Failure:
    """A stage's exception, handed down to the thread that raises it."""

    error: BaseException


class ClipRun:
    """The parts of one clip's run that do not depend on where the network runs.

    A subclass's ``__init__`` calls :meth:`_set_up`, which sets what every run has (among them ``_decoded``, the
    queue the decoder fills, and ``_to_writer``, the queue the writer empties)."""

    _stop: threading.Event
    _decoded: queue.Queue
    _to_writer: queue.Queue
    one_size_per_batch = False   # True: a frame of another size than its batch's starts the next batch
    _held: Frame | None = None   # that frame, meanwhile

    def _set_up(self, src: str, dst: str, info, config, cartoonizer, options, on_frame, *, batch_size: int,
                codec_threads: int, to_writer: int) -> None:
        """The attributes every run has: what it runs, what it measures, and the queues between its threads
        (``to_writer``: how many items may wait for the writer)."""
        self.src, self.dst, self.info, self.config, self.ck, self.options = src, dst, info, config, cartoonizer, options
        self.on_frame, self.batch_size, self.codec_threads = on_frame, batch_size, codec_threads
        self.flicker = Flicker() if options.measure else None
        self.stages = {"decode": 0.0, "network": 0.0, "temporal": 0.0, "encode": 0.0}
        if options.measure:
            self.stages["measure"] = 0.0
        self.notes: list[str] = []
        self.written = 0
        self.size = (0, 0)
        self.stopped = False
        self._stop = threading.Event()
        self._decoded = queue.Queue(maxsize=batch_size + QUEUE_FRAMES)
        self._to_writer = queue.Queue(maxsize=to_writer)
        self._writer: VideoWriter | None = None
        self._writer_error: BaseException | None = None

    # ------------------------------------------------------------------ the calling thread: the network

    def go(self, container, progress, should_stop) -> None:
        """Run the clip: the decoder and writer threads, and the network's batches in this thread; a stop or an
        error leaves no file."""
        total = expected_frames(self.info, self.options.start, self.options.end)
        decoder = threading.Thread(target=self._decode, args=(container,), name="cartoonkit-video-decode",
                                   daemon=True)
        writer = threading.Thread(target=self._write, name="cartoonkit-video-write", daemon=True)
        decoder.start()
        writer.start()
        failure: BaseException | None = None
        try:
            with self._engine_context():
                finished = False
                while not finished:
                    if should_stop is not None and should_stop():
                        self.stopped = True
                        break
                    frames, finished = self._take_batch()
                    if frames and not self._process_batch(frames):
                        break
                    if progress is not None:
                        progress(self.written, total)
                    if self._writer_error is not None:
                        break
        except BaseException as exc:
            failure = exc
        if failure is None and not self.stopped and self._writer_error is None:
            self._put(self._to_writer, END)
            while writer.is_alive():  # the writer finishes the file; progress keeps moving meanwhile
                writer.join(timeout=0.25)
                if progress is not None:
                    progress(self.written, total)
        self._stop.set()
        writer.join()
        decoder.join()
        error = failure or self._writer_error
        if error is not None or self.stopped:
            if self._writer is not None:
                self._writer.abort()
            if error is not None:
                raise error
            return
        if self._writer is None:
            raise OutputError(f"cannot write {self.dst}: no frame reached the encoder")
        if progress is not None:
            progress(self.written, self.written)

    def _engine_context(self):
        """Where the network's work is queued (the device run: a CUDA stream of its own)."""
        return contextlib.nullcontext()

    def _process_batch(self, frames: list[Frame]) -> bool:
        """The network's work on ``frames``, handed to the writer; ``False`` when the run is over."""
        raise NotImplementedError

    def _take_batch(self) -> tuple[list[Frame], bool]:
        """Up to ``batch_size`` frames (of one size, with :attr:`one_size_per_batch`): waits for the first, takes
        more only if already decoded; and whether the clip has ended."""
        batch: list[Frame] = []
        if self._held is not None:
            batch.append(self._held)
            self._held = None
        while len(batch) < self.batch_size:
            try:
                item = self._decoded.get(timeout=0.1 if batch else 0.25)
            except queue.Empty:
                if batch or self._writer_error is not None:
                    return batch, False
                continue
            if item is END:
                return batch, True
            if isinstance(item, Failure):
                raise item.error
            if self.one_size_per_batch and batch and item.rgb.shape != batch[0].rgb.shape:
                self._held = item  # a new size mid-clip: it starts the next batch
                return batch, False
            batch.append(item)
        return batch, False

    def _put(self, target: queue.Queue, item) -> bool:
        """Put without blocking forever: a stage that stopped must not hang the others. ``False`` when the item was
        not put (the run is stopping, or the writer failed and this was for it)."""
        while not self._stop.is_set():
            try:
                target.put(item, timeout=0.25)
                return True
            except queue.Full:
                if self._writer_error is not None and target is self._to_writer:
                    return False
        return False

    # ------------------------------------------------------------------ the decoder thread

    def _decode(self, container) -> None:
        try:
            frames = decode_frames(container, self.info, start=self.options.start, end=self.options.end,
                                   limits=self.options.limits, threads=self.codec_threads)
            while not self._stop.is_set():
                began = time.perf_counter()
                frame = next(frames, None)
                self.stages["decode"] += time.perf_counter() - began
                if frame is None:
                    break
                self._put(self._decoded, frame)
            else:
                return
            self._put(self._decoded, END)
        except BaseException as exc:  # handed to the calling thread, which raises it
            self._put(self._decoded, Failure(exc))

    # ------------------------------------------------------------------ the writer thread

    def _write(self) -> None:
        previous = None  # (input gray, input rgb, frame-by-frame cartoon, written) of the frame before
        try:
            while not self._stop.is_set():
                try:
                    item = self._to_writer.get(timeout=0.25)
                except queue.Empty:
                    continue
                if item is END:
                    if self._writer is not None:
                        began = time.perf_counter()
                        self._writer.close()
                        self.stages["encode"] += time.perf_counter() - began
                    return
                previous = self._write_item(item, previous)
        except BaseException as exc:
            self._writer_error = exc
            self._stop.set()

    def _write_item(self, item, previous):
        raise NotImplementedError

    def _open_writer(self, width: int, height: int) -> None:
        """The output file, opened at the first frame (its size is the cartoon's)."""
        if self._writer is not None:
            return
        self.size = (width, height)
        options = self.options
        self._writer = VideoWriter(self.dst, self.info, width, height, codec=options.codec, crf=options.crf,
                                   start=options.start, end=options.end, audio=options.audio,
                                   threads=self.codec_threads)
        self.notes.extend(self._writer.notes)

    def _finish_frame(self, frame: Frame, cartoon: np.ndarray, written: np.ndarray, previous,
                      photo: np.ndarray | None = None):
        """One frame out: measured if asked (``photo``, the input at the cartoon's size, when already made),
        handed to ``on_frame``, encoded. Returns what measuring the next frame needs of this one."""
        height, width = written.shape[:2]
        if self.flicker is not None:
            began = time.perf_counter()
            photo = photo if photo is not None else at_size(frame.rgb, width, height)
            luma = gray(photo)
            if previous is not None:
                move = motion(previous[0], luma, preset=METRIC_PRESET)
                self.flicker.input.append(warping_error(photo, previous[1], move))
                self.flicker.frame_by_frame.append(warping_error(cartoon, previous[2], move))
                self.flicker.output.append(warping_error(written, previous[3], move))
            self.flicker.psnr.append(psnr(written, cartoon))
            previous = (luma, photo, cartoon, written)
            self.stages["measure"] += time.perf_counter() - began
        if self.on_frame is not None:
            self.on_frame(frame.index, frame.rgb, cartoon, written)
        began = time.perf_counter()
        self._writer.write(written, frame.pts)
        self.stages["encode"] += time.perf_counter() - began
        self.written += 1
        return previous


def at_size(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """The input frame at the cartoon's size, for the flow, the photometric check and the measuring."""
    if rgb.shape[1] == width and rgb.shape[0] == height:
        return rgb
    return cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)
