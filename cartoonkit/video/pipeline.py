"""The video run: decode, the network, smoothing and encode overlap in three threads joined by bounded queues,
so a long clip costs the memory of a few frames.

::

    decoder thread     demux + decode, rotate, cut        -> queue (a few frames)
    calling thread     Cartoonizer.process_many, in batches of frames of the clip's one shape -> queue (a few frames)
    writer thread      temporal smoothing, the warping error if asked, encode + mux (audio copied alongside)

Every frame goes through the photo chain (:meth:`~cartoonkit.pipeline.Cartoonizer.process_many`) with the
clip's :class:`~cartoonkit.config.CartoonConfig`, so a frame's cartoon is the photo cartoon of that frame. On CUDA
:func:`cartoonize_video` takes :class:`~cartoonkit.video.device_run.DeviceRun` instead (the clip batched on the
device, the smoothing there too).
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from ..config import DEFAULT_MODEL, CartoonConfig
from ..errors import OutputError
from ..imageio import DecodedImage
from ..options import EngineOptions
from ..run_options import VideoOptions, batch_size_for
from ..settings import apply_changes
from .decode import Frame, decode_frames
from .encode import VideoWriter, container_format
from .flow import METRIC_PRESET, gray, motion, psnr, warping_error
from .probe import check_section, expected_frames, open_input, probe
from .report import Flicker, VideoSummary
from .temporal import TemporalSmoother

QUEUE_FRAMES = 4   # frames waiting between two stages, beyond a batch: enough to keep each stage busy
# Codec threads on the CPU: the network already runs on every core, and FFmpeg's and x264's own thread pools
# (a thread or more per core each) would only fight it for them, which costs far more than they give when the
# machine is busy. On CUDA the network leaves the cores free and the codecs take what they like (0).
CPU_CODEC_THREADS = 1
_END = object()


@dataclass
class _Failure:
    error: BaseException


def cartoonize_video(src: str | os.PathLike, dst: str | os.PathLike, config: CartoonConfig | None = None,
                     engine_options: EngineOptions | None = None, run_options: VideoOptions | None = None, *,
                     cartoonizer=None, model: str = DEFAULT_MODEL, head_model: str | None = None,
                     progress: Callable[[int, int | None], None] | None = None,
                     should_stop: Callable[[], bool] | None = None,
                     on_frame: Callable[[int, np.ndarray, np.ndarray, np.ndarray], None] | None = None,
                     **settings) -> VideoSummary:
    """Cartoonize the clip ``src`` into ``dst`` (``.mp4``, ``.m4v``, ``.mov`` or ``.mkv``) and return a
    :class:`~cartoonkit.video.report.VideoSummary`.

    Three objects say how: ``config`` (:class:`CartoonConfig`, the photo settings for every frame),
    ``engine_options`` (:class:`EngineOptions`, how the network runs) and ``run_options``
    (:class:`~cartoonkit.run_options.VideoOptions`: the smoothing strength, the section, the encoder and its
    quality, the audio, measuring, the batch size and the limits; each field's help says what it does).
    ``**settings`` changes any of their fields by name on top (``temporal=0.5, end=2.0, resolution=512``).
    ``measure`` computes the warping errors (input, frame by frame, written) and the PSNR of the written frames
    against the frame-by-frame ones, at a few ms per frame.

    ``cartoonizer``: a warm :class:`~cartoonkit.pipeline.Cartoonizer` (else ``model``, with ``head_model`` for
    compound mode, is loaded with ``engine_options``). ``progress(done, total)`` is called from the calling
    thread (``total`` may be ``None``); ``should_stop()`` is polled there, and a stop leaves no file;
    ``on_frame(index, input_rgb, frame_by_frame_rgb, written_rgb)`` is called from the writer thread with every
    frame before it is encoded."""
    src, dst = os.fspath(src), os.fspath(dst)
    config, engine_options, options = apply_changes(settings, config or CartoonConfig(),
                                                    engine_options or EngineOptions(), run_options or VideoOptions())
    container_format(dst)
    if os.path.exists(dst) and os.path.exists(src) and os.path.samefile(src, dst):
        raise OutputError(f"{dst}: is the input itself; choose another output")
    started = time.perf_counter()
    container = open_input(src)
    try:
        info = probe(container, src, options.limits)
        check_section(info, options.start, options.end, options.limits)
        precision_note = None
        if cartoonizer is None:
            from ..engine import resolve_device
            from ..pipeline import Cartoonizer
            from .clip_precision import clip_engine_options

            engine_options, precision_note = clip_engine_options(
                engine_options, resolve_device(engine_options.device).type,
                expected_frames(info, options.start, options.end), info.height, info.width,
                config.network_long_side)
            cartoonizer = Cartoonizer.from_pretrained(model, engine_options=engine_options, head_model=head_model)
        if config.mode == "compound" and config.style_weight > 0 and options.temporal > 0:
            from .faces import FaceTracker

            # One tracker per clip, in frame order (the chain detects the photos of a batch in order).
            cartoonizer = cartoonizer.with_face_detector(FaceTracker(cartoonizer.face_detector, float(info.fps)))
        from .device_run import DeviceRun, chosen

        run_class = DeviceRun if chosen(cartoonizer.device) else _Run  # CUDA: the clip batched on the device
        run = run_class(src, dst, info, config, cartoonizer, options, on_frame)
        if precision_note is not None:
            run.notes.append(precision_note)
        run.go(container, progress, should_stop)
    finally:
        container.close()
    return VideoSummary(src=src, dst=None if run.stopped else dst, frames=run.written, width=run.size[0],
                        height=run.size[1], clip_fps=float(info.fps), seconds=time.perf_counter() - started,
                        stages=run.stages, temporal=options.temporal, cuts=run.smoother.cuts, notes=run.notes,
                        flicker=run.flicker, stopped=run.stopped)


class _Run:
    """One clip's threads and what they measured."""

    def __init__(self, src: str, dst: str, info, config: CartoonConfig, cartoonizer, options: VideoOptions,
                 on_frame):
        self.src, self.dst, self.info, self.config, self.ck, self.options = src, dst, info, config, cartoonizer, options
        self.batch_size, self.on_frame = batch_size_for(options.batch_size, cartoonizer.device.type), on_frame
        self.codec_threads = CPU_CODEC_THREADS if cartoonizer.device.type == "cpu" else 0
        self.smoother = TemporalSmoother(options.temporal)
        self.flicker = Flicker() if options.measure else None
        self.stages = {"decode": 0.0, "network": 0.0, "temporal": 0.0, "encode": 0.0}
        if options.measure:
            self.stages["measure"] = 0.0
        self.notes: list[str] = []
        self.written = 0
        self.size = (0, 0)
        self.stopped = False
        self._stop = threading.Event()
        self._decoded: queue.Queue = queue.Queue(maxsize=self.batch_size + QUEUE_FRAMES)
        self._cartoons: queue.Queue = queue.Queue(maxsize=self.batch_size + QUEUE_FRAMES)
        self._writer: VideoWriter | None = None
        self._writer_error: BaseException | None = None

    # ------------------------------------------------------------------ the calling thread: the network

    def go(self, container, progress, should_stop) -> None:
        total = expected_frames(self.info, self.options.start, self.options.end)
        decoder = threading.Thread(target=self._decode, args=(container,), name="cartoonkit-video-decode",
                                   daemon=True)
        writer = threading.Thread(target=self._write, name="cartoonkit-video-write", daemon=True)
        decoder.start()
        writer.start()
        failure: BaseException | None = None
        try:
            finished = False
            while not finished:
                if should_stop is not None and should_stop():
                    self.stopped = True
                    break
                batch, finished = self._take_batch()
                if batch:
                    self._put(self._cartoons, (batch, self._cartoonize(batch)))
                if progress is not None:
                    progress(self.written, total)
                if self._writer_error is not None:
                    break
        except BaseException as exc:
            failure = exc
        if failure is None and not self.stopped and self._writer_error is None:
            self._put(self._cartoons, _END)
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

    def _take_batch(self) -> tuple[list[Frame], bool]:
        """Up to ``batch_size`` frames: waits for the first, takes more only if already decoded."""
        batch: list[Frame] = []
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
            batch.append(item)
        return batch, False

    def _cartoonize(self, batch: list[Frame]) -> list[np.ndarray]:
        start = time.perf_counter()
        decoded = [DecodedImage(rgb=torch.from_numpy(f.rgb).permute(2, 0, 1).contiguous(), alpha=None,
                                name=f"{self.src} frame {f.index}", format="video") for f in batch]
        results = self.ck.process_many(decoded, self.config, max_batch=self.batch_size)
        cartoons = [np.ascontiguousarray(r.rgb.permute(1, 2, 0).cpu().numpy()) for r in results]
        for result in results:
            self.notes.extend(n for n in result.notes if n not in self.notes)
        self.stages["network"] += time.perf_counter() - start
        return cartoons

    def _put(self, target: queue.Queue, item) -> None:
        """Put without blocking forever: a stage that stopped must not hang the others."""
        while not self._stop.is_set():
            try:
                target.put(item, timeout=0.25)
                return
            except queue.Full:
                if self._writer_error is not None and target is self._cartoons:
                    return

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
                    item = self._cartoons.get(timeout=0.25)
                except queue.Empty:
                    continue
                if item is _END:
                    if self._writer is not None:
                        began = time.perf_counter()
                        self._writer.close()
                        self.stages["encode"] += time.perf_counter() - began
                    return
                for frame, cartoon in zip(*item, strict=True):
                    previous = self._write_one(frame, cartoon, previous)
        except BaseException as exc:
            self._writer_error = exc
            self._stop.set()

    def _write_one(self, frame: Frame, cartoon: np.ndarray, previous):
        height, width = cartoon.shape[:2]
        if self._writer is None:
            self.size = (width, height)
            options = self.options
            self._writer = VideoWriter(self.dst, self.info, width, height, codec=options.codec, crf=options.crf,
                                       start=options.start, end=options.end, audio=options.audio,
                                       threads=self.codec_threads)
            self.notes.extend(self._writer.notes)
        began = time.perf_counter()
        smoothing = self.smoother.strength > 0
        photo = _resize(frame.rgb, width, height) if smoothing or self.flicker is not None else None
        written = self.smoother(photo, cartoon).frame if smoothing else cartoon
        # The input at the cartoon's size is the smoothing's cost when it runs, else only the measuring's.
        self.stages["temporal" if smoothing else "measure" if self.flicker is not None else "temporal"] += \
            time.perf_counter() - began
        if self.flicker is not None:
            began = time.perf_counter()
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


def _resize(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """The input frame at the cartoon's size, for the flow and the photometric check."""
    if rgb.shape[1] == width and rgb.shape[0] == height:
        return rgb
    return cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)
