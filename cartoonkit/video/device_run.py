"""The video run on a CUDA cartoonizer (issue 24): a batch of frames goes to the device once and stays there from the
network to the smoothed frame, and the host waits for the device once per batch, not once per frame and stage::

    decoder thread    demux + decode (FFmpeg's own threads), rotate, cut ................ -> queue (a batch + 4)
    engine (caller)   a batch of frames of one size into a reused pinned buffer, one copy to the device;
                      Cartoonizer.process_many and DeviceTemporalSmoother on the device, on a stream of
                      its own; one copy of the written frames into a reused pinned buffer; an event ..... -> queue
    writer thread     waits for the batch's event; measures if asked, on_frame, encode + mux (audio alongside)

Why this shape: on a GPU the CPU run's stages cost more than the network (issue 24 measured the network stage at
8-13x the network alone, and one CPU thread's optical flow capped 1080p at 12 fps). Here the engine thread only
queues work, as the folder stream's does (:mod:`cartoonkit.folder.stream`); it waits only when every pinned output
buffer is still with the writer, which bounds the batches in flight. The device's stage times come from CUDA
events, read by the writer after its wait.

It keeps what the CPU run (:mod:`~cartoonkit.video.pipeline`) guarantees: time stamps, audio, rotation, odd sizes,
the summary and its stages, ``measure``, ``on_frame``, and a stop or an error leaves no file; with temporal 0 every
frame is the photo chain's. On the CPU (where only tests force it, with :data:`FORCE_ENV`) every step is
synchronous and timed by the clock.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from ..config import CartoonConfig
from ..errors import OutputError
from ..imageio import DecodedImage
from ..run_options import VideoOptions, batch_size_for
from ..timing import host_time_only
from ..transforms import resize_to
from .decode import Frame, decode_frames
from .device_temporal import DeviceTemporalSmoother
from .encode import VideoWriter
from .flow import METRIC_PRESET, gray, motion, psnr, warping_error
from .probe import expected_frames
from .report import Flicker

FORCE_ENV = "CARTOONKIT_VIDEO_DEVICE_RUN"
"""``1``: take this run on any device. For tests, which check it on the CPU against the CPU run."""
QUEUE_FRAMES = 4        # decoded frames waiting beyond a batch: enough to keep the engine fed
BATCHES_IN_FLIGHT = 2   # batches queued on the device or waiting for the writer: keeps both busy, bounds memory
CPU_CODEC_THREADS = 1   # as the CPU run: there the network needs every core; on CUDA FFmpeg takes what it likes (0)
_END = object()


def chosen(device: torch.device) -> bool:
    """Whether a clip on ``device`` takes this run rather than the CPU run."""
    return device.type == "cuda" or os.environ.get(FORCE_ENV) == "1"


@dataclass
class _Failure:
    error: BaseException


class _Clock:
    """Marks between the device's steps: CUDA events on CUDA (recorded on the current stream, so they time the
    device's work, not the host's queueing), else the host's clock (the work was done when it returned)."""

    def __init__(self, cuda: bool):
        self.cuda = cuda

    def mark(self):
        if not self.cuda:
            return time.perf_counter()
        event = torch.cuda.Event(enable_timing=True)
        event.record()
        return event

    def wait(self, mark) -> None:
        if self.cuda:
            mark.synchronize()

    def seconds(self, start, end) -> float:
        return start.elapsed_time(end) / 1000.0 if self.cuda else end - start


class _Slot:
    """Reused host buffers (pinned on CUDA) for one batch's way back: the written frames and, when something on
    the host wants them, the frame-by-frame cartoons; ``(capacity, H, W, 3)`` each, made again at a new size."""

    def __init__(self):
        self.written: torch.Tensor | None = None
        self.cartoons: torch.Tensor | None = None

    def fill(self, written: torch.Tensor, cartoons: torch.Tensor | None, capacity: int, pin: bool) -> None:
        """Queue the copies of ``(N, 3, H, W)`` device tensors into the buffers (asynchronous on CUDA)."""
        count, _, height, width = written.shape
        shape = (max(capacity, count), height, width, 3)
        if self.written is None or self.written.shape[0] < count or self.written.shape[1:3] != (height, width):
            self.written = _host_buffer(shape, pin)
            self.cartoons = None
        self.written[:count].copy_(written.permute(0, 2, 3, 1), non_blocking=pin)
        if cartoons is not None:
            if self.cartoons is None:
                self.cartoons = _host_buffer(self.written.shape, pin)
            self.cartoons[:count].copy_(cartoons.permute(0, 2, 3, 1), non_blocking=pin)


@dataclass(eq=False)
class _Batch:
    """One batch on its way to the writer: its frames as decoded (index, time stamp, pixels), the slot its results
    land in, and the clock's marks: start, network done, smoothing done, copied back (wait for this one)."""

    frames: list[Frame]
    slot: _Slot
    marks: list
    with_cartoons: bool


class DeviceRun:
    """One clip's threads on the cartoonizer's device, with the CPU run's interface: :meth:`go`, then ``written``,
    ``size``, ``stages``, ``smoother.cuts``, ``notes``, ``flicker``, ``stopped`` for the summary."""

    def __init__(self, src: str, dst: str, info, config: CartoonConfig, cartoonizer, options: VideoOptions,
                 on_frame):
        self.src, self.dst, self.info, self.config, self.ck, self.options = src, dst, info, config, cartoonizer, options
        self.on_frame = on_frame
        self.device = cartoonizer.device
        self.cuda = self.device.type == "cuda"
        self.batch_size = batch_size_for(options.batch_size, self.device.type)
        self.codec_threads = 0 if self.cuda else CPU_CODEC_THREADS
        self.smoother = DeviceTemporalSmoother(options.temporal)
        self.flicker = Flicker() if options.measure else None
        self.stages = {"decode": 0.0, "network": 0.0, "temporal": 0.0, "encode": 0.0}
        if options.measure:
            self.stages["measure"] = 0.0
        self.notes: list[str] = []
        self.written = 0
        self.size = (0, 0)
        self.stopped = False
        self._clock = _Clock(self.cuda)
        self._stop = threading.Event()
        self._decoded: queue.Queue = queue.Queue(maxsize=self.batch_size + QUEUE_FRAMES)
        self._ready: queue.Queue = queue.Queue(maxsize=BATCHES_IN_FLIGHT)
        self._free: queue.Queue = queue.Queue()
        for _ in range(BATCHES_IN_FLIGHT):
            self._free.put(_Slot())
        # Two input buffers in turn: one is filled while the device may still be copying from the other.
        self._inputs: list[list] = [[None, None], [None, None]]  # [buffer, mark after its copy to the device]
        self._turn = 0
        self._held: Frame | None = None  # a frame of another size than its batch: the next batch's first
        self._writer: VideoWriter | None = None
        self._writer_error: BaseException | None = None

    # ------------------------------------------------------------------ the calling thread: the engine

    def go(self, container, progress, should_stop) -> None:
        total = expected_frames(self.info, self.options.start, self.options.end)
        decoder = threading.Thread(target=self._decode, args=(container,), name="cartoonkit-video-decode",
                                   daemon=True)
        writer = threading.Thread(target=self._write, name="cartoonkit-video-write", daemon=True)
        decoder.start()
        writer.start()
        failure: BaseException | None = None
        try:
            with self._on_device(), host_time_only():
                finished = False
                while not finished:
                    if should_stop is not None and should_stop():
                        self.stopped = True
                        break
                    frames, finished = self._take_batch()
                    if frames and not self._queue_batch(frames):
                        break
                    if progress is not None:
                        progress(self.written, total)
                    if self._writer_error is not None:
                        break
        except BaseException as exc:
            failure = exc
        if failure is None and not self.stopped and self._writer_error is None:
            self._put(self._ready, _END)
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

    def _on_device(self):
        """The engine's work on a stream of its own (CUDA), so that it does not wait for, or hold up, other work
        on the device's default stream."""
        if not self.cuda:
            return contextlib.nullcontext()
        stack = contextlib.ExitStack()
        stack.enter_context(torch.cuda.device(self.device))
        stack.enter_context(torch.cuda.stream(torch.cuda.Stream(self.device)))
        return stack

    def _take_batch(self) -> tuple[list[Frame], bool]:
        """Up to ``batch_size`` frames of one size: waits for the first, takes more only if already decoded."""
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
            if item is _END:
                return batch, True
            if isinstance(item, _Failure):
                raise item.error
            if batch and item.rgb.shape != batch[0].rgb.shape:
                self._held = item  # a new size mid-clip: it starts the next batch
                return batch, False
            batch.append(item)
        return batch, False

    def _queue_batch(self, frames: list[Frame]) -> bool:
        """Queue one batch's device work and its copy back, and hand it to the writer; False if the run is over."""
        clock = self._clock
        marks = [clock.mark()]
        pixels = self._upload(frames)
        decoded = [DecodedImage(rgb=pixels[i], alpha=None, name=f"{self.src} frame {frame.index}", format="video")
                   for i, frame in enumerate(frames)]
        inputs = [self.ck.prepare(image, self.config) for image in decoded]
        results = self.ck.process_many(inputs, self.config, max_batch=self.batch_size)
        for result in results:
            self.notes.extend(n for n in result.notes if n not in self.notes)
        cartoons = torch.stack([result.rgb for result in results])
        marks.append(clock.mark())
        smoothing = self.smoother.strength > 0
        written = self.smoother(self._photos(pixels, inputs, cartoons), cartoons) if smoothing else cartoons
        marks.append(clock.mark())
        slot = self._take_slot()
        if slot is None:
            return False
        with_cartoons = smoothing and (self.on_frame is not None or self.flicker is not None)
        slot.fill(written, cartoons if with_cartoons else None, self.batch_size, self.cuda)
        marks.append(clock.mark())
        return self._put(self._ready, _Batch(frames, slot, marks, with_cartoons))

    def _upload(self, frames: list[Frame]) -> torch.Tensor:
        """The frames as ``uint8 (N, 3, H, W)`` on the device: gathered into a reused (pinned) host buffer, then one
        copy for the batch."""
        buffer, copied = self._inputs[self._turn]
        if copied is not None:
            self._clock.wait(copied)  # that buffer's last copy to the device has run
        height, width = frames[0].rgb.shape[:2]
        if buffer is None or buffer.shape[0] < len(frames) or buffer.shape[1:3] != (height, width):
            buffer = _host_buffer((max(self.batch_size, len(frames)), height, width, 3), self.cuda)
        array = buffer.numpy()
        for i, frame in enumerate(frames):
            array[i] = frame.rgb
        on_device = buffer[:len(frames)].to(self.device, non_blocking=self.cuda)
        self._inputs[self._turn] = [buffer, self._clock.mark()]
        self._turn = 1 - self._turn
        # Channels first and contiguous, as the CPU run hands each frame to the chain (the same resize path).
        return on_device.permute(0, 3, 1, 2).contiguous()

    def _photos(self, pixels: torch.Tensor, inputs, cartoons: torch.Tensor) -> torch.Tensor:
        """The input frames at the cartoons' size, for the flow and the photometric weight. Without upscale or
        denoise the chain's prepared photos are exactly that (the frame resized to the output size)."""
        size = tuple(cartoons.shape[-2:])
        if self.config.denoise == 0 and tuple(inputs[0].photo.shape[-2:]) == size:
            return torch.stack([item.photo for item in inputs])
        return resize_to(pixels, size)

    def _take_slot(self) -> _Slot | None:
        """A free output buffer: waits while every one is still with the writer (this bounds the work in flight)."""
        while not self._stop.is_set() and self._writer_error is None:
            try:
                return self._free.get(timeout=0.25)
            except queue.Empty:
                continue
        return None

    def _put(self, target: queue.Queue, item) -> bool:
        """Put without blocking forever: a stage that stopped must not hang the others."""
        while not self._stop.is_set():
            try:
                target.put(item, timeout=0.25)
                return True
            except queue.Full:
                if self._writer_error is not None and target is self._ready:
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
            self._put(self._decoded, _END)
        except BaseException as exc:  # handed to the calling thread, which raises it
            self._put(self._decoded, _Failure(exc))

    # ------------------------------------------------------------------ the writer thread

    def _write(self) -> None:
        previous = None  # (input gray, input rgb, frame-by-frame cartoon, written) of the frame before
        try:
            while not self._stop.is_set():
                try:
                    item = self._ready.get(timeout=0.25)
                except queue.Empty:
                    continue
                if item is _END:
                    if self._writer is not None:
                        began = time.perf_counter()
                        self._writer.close()
                        self.stages["encode"] += time.perf_counter() - began
                    return
                previous = self._write_batch(item, previous)
        except BaseException as exc:
            self._writer_error = exc
            self._stop.set()

    def _write_batch(self, batch: _Batch, previous):
        clock, marks = self._clock, batch.marks
        clock.wait(marks[-1])  # the batch's copy back has landed (and a device error, if any, is raised here)
        self.stages["network"] += clock.seconds(marks[0], marks[1])
        self.stages["temporal"] += clock.seconds(marks[1], marks[2])
        self.stages["encode"] += clock.seconds(marks[2], marks[3])  # the copy back: the output's way out
        count = len(batch.frames)
        written = batch.slot.written[:count].numpy()
        cartoons = batch.slot.cartoons[:count].numpy() if batch.with_cartoons else None
        # The buffers go back to the engine after this batch: a frame that outlives it (handed to on_frame, or kept
        # as the measure's frame before) is a copy.
        outlives = self.on_frame is not None or self.flicker is not None
        for i, frame in enumerate(batch.frames):
            frame_written = np.array(written[i]) if outlives else written[i]
            frame_cartoon = frame_written if cartoons is None else np.array(cartoons[i])
            previous = self._write_one(frame, frame_cartoon, frame_written, previous)
        self._free.put(batch.slot)
        return previous

    def _write_one(self, frame: Frame, cartoon: np.ndarray, written: np.ndarray, previous):
        height, width = written.shape[:2]
        if self._writer is None:
            self.size = (width, height)
            options = self.options
            self._writer = VideoWriter(self.dst, self.info, width, height, codec=options.codec, crf=options.crf,
                                       start=options.start, end=options.end, audio=options.audio,
                                       threads=self.codec_threads)
            self.notes.extend(self._writer.notes)
        if self.flicker is not None:
            began = time.perf_counter()
            photo = _resize(frame.rgb, width, height)
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


def _host_buffer(shape: tuple[int, ...], pin: bool) -> torch.Tensor:
    """``uint8`` host memory; page-locked for CUDA, so the copies to and from the device are asynchronous."""
    return torch.empty(shape, dtype=torch.uint8, pin_memory=pin)


def _resize(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """The input frame at the cartoon's size, for measuring (as the CPU run measures it)."""
    if rgb.shape[1] == width and rgb.shape[0] == height:
        return rgb
    return cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)
