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
import time
from dataclasses import dataclass

import numpy as np
import torch

from ..config import CartoonConfig
from ..imageio import DecodedImage
from ..run_options import VideoOptions, batch_size_for
from ..timing import host_time_only
from ..transforms import resize_to
from .clip_run import ClipRun
from .decode import Frame
from .device_temporal import DeviceTemporalSmoother

FORCE_ENV = "CARTOONKIT_VIDEO_DEVICE_RUN"
"""``1``: take this run on any device. For tests, which check it on the CPU against the CPU run."""
BATCHES_IN_FLIGHT = 2   # batches queued on the device or waiting for the writer: keeps both busy, bounds memory
CPU_CODEC_THREADS = 1   # as the CPU run: there the network needs every core; on CUDA FFmpeg takes what it likes (0)


def chosen(device: torch.device) -> bool:
    """Whether a clip on ``device`` takes this run rather than the CPU run."""
    return device.type == "cuda" or os.environ.get(FORCE_ENV) == "1"


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


class DeviceRun(ClipRun):
    """One clip's threads on the cartoonizer's device, with the CPU run's interface: :meth:`go`, then ``written``,
    ``size``, ``stages``, ``smoother.cuts``, ``notes``, ``flicker``, ``stopped`` for the summary."""

    one_size_per_batch = True  # a batch is one tensor on the device

    def __init__(self, src: str, dst: str, info, config: CartoonConfig, cartoonizer, options: VideoOptions,
                 on_frame):
        self.device = cartoonizer.device
        self.cuda = self.device.type == "cuda"
        self._set_up(src, dst, info, config, cartoonizer, options, on_frame,
                     batch_size=batch_size_for(options.batch_size, self.device.type),
                     codec_threads=0 if self.cuda else CPU_CODEC_THREADS, to_writer=BATCHES_IN_FLIGHT)
        self.smoother = DeviceTemporalSmoother(options.temporal)
        self._clock = _Clock(self.cuda)
        self._free: queue.Queue = queue.Queue()
        for _ in range(BATCHES_IN_FLIGHT):
            self._free.put(_Slot())
        # Two input buffers in turn: one is filled while the device may still be copying from the other.
        self._inputs: list[list] = [[None, None], [None, None]]  # [buffer, mark after its copy to the device]
        self._turn = 0

    # ------------------------------------------------------------------ the calling thread: the engine

    def _engine_context(self):
        """The engine's work on a stream of its own (CUDA), so that it does not wait for, or hold up, other work
        on the device's default stream; the chain's stage timings are the host's only (no synchronisation)."""
        stack = contextlib.ExitStack()
        if self.cuda:
            stack.enter_context(torch.cuda.device(self.device))
            stack.enter_context(torch.cuda.stream(torch.cuda.Stream(self.device)))
        stack.enter_context(host_time_only())
        return stack

    def _process_batch(self, frames: list[Frame]) -> bool:
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
        return self._put(self._to_writer, _Batch(frames, slot, marks, with_cartoons))

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

    # ------------------------------------------------------------------ the writer thread

    def _write_item(self, batch: _Batch, previous):
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
        self._open_writer(width, height)
        return self._finish_frame(frame, cartoon, written, previous)


def _host_buffer(shape: tuple[int, ...], pin: bool) -> torch.Tensor:
    """``uint8`` host memory; page-locked for CUDA, so the copies to and from the device are asynchronous."""
    return torch.empty(shape, dtype=torch.uint8, pin_memory=pin)

