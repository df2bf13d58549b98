"""Notebook 06's question: what does temporal smoothing buy on a real clip (flicker, by Lai et al.'s warping error),
and what does it cost (detail, against the frame-by-frame cartoon, and time per frame)?

Each run is one :func:`cartoonkit.video.cartoonize_video` with ``measure=True``: the smoothed frames and the
frame-by-frame ones come from the same network outputs, so the difference between them is the smoothing alone.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..config import CartoonConfig
from ..video import cartoonize_video
from ..video.report import VideoSummary
from .figures import grid


@dataclass
class TemporalRun:
    """One clip at one smoothing strength: the summary (with its per-frame warping errors), CPU seconds, and the
    (input, frame-by-frame, smoothed) frames kept for pictures."""

    strength: float
    summary: VideoSummary
    cpu_seconds: float
    frames: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict)


def run(clip: str | Path, cartoonizer, strength: float, *, resolution: int = 512, end: float | None = None,
        keep: tuple[int, ...] = ()) -> TemporalRun:
    """Cartoonize ``clip`` (to a throw-away file) with smoothing ``strength``, measuring the warping errors; the
    frames whose index is in ``keep`` are kept (input at the cartoon's size)."""
    kept: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def on_frame(index, photo, frame_by_frame, written):
        if index in keep:
            small = cv2.resize(photo, (written.shape[1], written.shape[0]), interpolation=cv2.INTER_AREA)
            kept[index] = (small, frame_by_frame.copy(), written.copy())

    with tempfile.TemporaryDirectory() as folder:
        began = time.process_time()
        summary = cartoonize_video(clip, Path(folder) / "out.mp4", CartoonConfig(resolution=resolution),
                                   cartoonizer=cartoonizer, temporal=strength, end=end, measure=True,
                                   on_frame=on_frame)
        cpu = time.process_time() - began
    return TemporalRun(strength, summary, cpu, kept)


def table(runs: list[TemporalRun]) -> list[dict]:
    """One row per run: the mean warping errors, their ratio to the input's, the PSNR against frame by frame,
    the sharpness kept, and ms per frame (wall, CPU, and the smoothing stage alone)."""
    rows = []
    for r in runs:
        f, s = r.summary.flicker, r.summary
        rows.append({"strength": r.strength, "frames": s.frames,
                     "input": round(f.input_mean, 5), "frame by frame": round(f.frame_by_frame_mean, 5),
                     "smoothed": round(f.output_mean, 5),
                     "smoothed / input": round(f.output_mean / f.input_mean, 3),
                     "frame by frame / input": round(f.frame_by_frame_mean / f.input_mean, 3),
                     "PSNR vs frame by frame (dB)": round(f.psnr_mean, 1),
                     "sharpness kept (%)": round(100 * sharpness_kept(r), 1) if r.frames else None,
                     "ms/frame (wall)": round(1000 * s.seconds / s.frames, 1),
                     "ms/frame (CPU)": round(1000 * r.cpu_seconds / s.frames, 1),
                     "smoothing ms/frame": round(s.per_frame_ms("temporal"), 1),
                     "measuring ms/frame": round(s.per_frame_ms("measure"), 1)})
    return rows


def sharpness(rgb: np.ndarray) -> float:
    """Mean gradient magnitude of the luma (Sobel): what blurring, or ghosting, would lower."""
    luma = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return float(np.mean(cv2.magnitude(cv2.Sobel(luma, cv2.CV_32F, 1, 0), cv2.Sobel(luma, cv2.CV_32F, 0, 1))))


def sharpness_kept(r: TemporalRun) -> float:
    """The smoothed frames' sharpness over the frame-by-frame ones', over the kept frames."""
    return float(np.mean([sharpness(written) / sharpness(raw) for _, raw, written in r.frames.values()]))


def error_figure(runs: list[TemporalRun]):
    """A plotly line chart of the warping error per frame: the input, frame by frame, and each smoothed run."""
    import plotly.graph_objects as go

    figure = go.Figure()
    first = runs[0].summary.flicker
    frames = list(range(1, len(first.input) + 1))
    figure.add_scatter(x=frames, y=first.input, name="input video", line={"color": "black", "dash": "dot"})
    figure.add_scatter(x=frames, y=first.frame_by_frame, name="frame by frame", line={"color": "crimson"})
    for r in runs:
        if r.strength > 0:
            figure.add_scatter(x=frames, y=r.summary.flicker.output, name=f"smoothed, strength {r.strength:g}")
    figure.update_layout(title="Warping error per frame (Lai et al.; lower is steadier)", xaxis_title="frame",
                         yaxis_title="mean |O_t - W(O_t-1)| over non-occluded pixels (0-1)", height=420)
    return figure


def strip(r: TemporalRun, amplify: float = 8.0) -> np.ndarray:
    """Rows of kept frames: input, frame by frame, smoothed, and their difference amplified (what smoothing
    changed: it should sit on flickering lines and flat areas, not on moving edges)."""
    images, labels = [], []
    for index in sorted(r.frames):
        photo, raw, written = r.frames[index]
        change = np.clip(np.abs(written.astype(np.int16) - raw.astype(np.int16)) * amplify, 0, 255).astype(np.uint8)
        images += [photo, raw, written, change]
        labels += [f"frame {index}: input", "frame by frame", f"smoothed ({r.strength:g})",
                   f"|difference| x{amplify:g}"]
    return grid(images, len(r.frames), 4, labels)
