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
import time
from collections.abc import Callable

import numpy as np
import torch

from ..config import DEFAULT_MODEL, CartoonConfig
from ..errors import OutputError
from ..imageio import DecodedImage
from ..options import EngineOptions
from ..run_options import VideoOptions, batch_size_for
from ..settings import apply_changes
from .clip_run import QUEUE_FRAMES, ClipRun, at_size
from .decode import Frame
from .encode import container_format
from .probe import check_section, expected_frames, open_input, probe
from .report import VideoSummary
from .temporal import TemporalSmoother

# Codec threads on the CPU: the network already runs on every core, and FFmpeg's and x264's own thread pools
# (a thread or more per core each) would only fight it for them, which costs far more than they give when the
# machine is busy. On CUDA the network leaves the cores free and the codecs take what they like (0).
CPU_CODEC_THREADS = 1


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


class _Run(ClipRun):
    """One clip's threads and what they measured."""

    def __init__(self, src: str, dst: str, info, config: CartoonConfig, cartoonizer, options: VideoOptions,
                 on_frame):
        batch_size = batch_size_for(options.batch_size, cartoonizer.device.type)
        self._set_up(src, dst, info, config, cartoonizer, options, on_frame, batch_size=batch_size,
                     codec_threads=CPU_CODEC_THREADS if cartoonizer.device.type == "cpu" else 0,
                     to_writer=batch_size + QUEUE_FRAMES)
        self.smoother = TemporalSmoother(options.temporal)

    # ------------------------------------------------------------------ the calling thread: the network

    def _process_batch(self, frames: list[Frame]) -> bool:
        return self._put(self._to_writer, (frames, self._cartoonize(frames)))

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

    # ------------------------------------------------------------------ the writer thread

    def _write_item(self, item, previous):
        for frame, cartoon in zip(*item, strict=True):
            previous = self._write_one(frame, cartoon, previous)
        return previous

    def _write_one(self, frame: Frame, cartoon: np.ndarray, previous):
        height, width = cartoon.shape[:2]
        self._open_writer(width, height)
        began = time.perf_counter()
        smoothing = self.smoother.strength > 0
        photo = at_size(frame.rgb, width, height) if smoothing or self.flicker is not None else None
        written = self.smoother(photo, cartoon).frame if smoothing else cartoon
        # The input at the cartoon's size is the smoothing's cost when it runs, else only the measuring's.
        self.stages["temporal" if smoothing else "measure" if self.flicker is not None else "temporal"] += \
            time.perf_counter() - began
        return self._finish_frame(frame, cartoon, written, previous, photo)
