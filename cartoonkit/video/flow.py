"""Optical flow between input frames, the warp it gives, where that warp can be trusted, and the warping error
of Lai et al. (ECCV 2018, "Learning Blind Video Temporal Consistency") that measures flicker with it.

Flow is OpenCV's DIS (Kroeger et al. 2016): a few milliseconds per frame pair on a CPU, good enough on the
slow, smooth motion of people in front of a camera. The trusted pixels are those where the forward flow lands
back where the backward flow started (the forward-backward check of Sundaram et al. 2010, which Lai et al. use
as their occlusion mask): occluded or disoccluded pixels and flow failures fail it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import cv2
import numpy as np

# Presets: the smoother runs at every frame of every clip, so it takes the fast one; the metric is run to judge
# results, so it takes a finer one, not the estimator the smoother trusts (both at the cartoon's size).
SMOOTH_PRESET, METRIC_PRESET = cv2.DISOPTICAL_FLOW_PRESET_FAST, cv2.DISOPTICAL_FLOW_PRESET_MEDIUM

_estimators = threading.local()  # a DIS object keeps state between calls, so one per thread and preset


def _estimator(preset: int) -> cv2.DISOpticalFlow:
    cache = _estimators.__dict__.setdefault("by_preset", {})
    if preset not in cache:
        cache[preset] = cv2.DISOpticalFlow_create(preset)
    return cache[preset]


def gray(rgb: np.ndarray) -> np.ndarray:
    """The luma the flow is computed on, ``uint8 (H, W)``, from ``uint8 (H, W, 3)`` RGB."""
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


@dataclass
class Motion:
    """How frame t-1 moved to frame t: sampling maps that pull frame t-1 onto frame t's pixel grid, and which of
    frame t's pixels that pull is reliable for (``mask``, bool ``(H, W)``)."""

    map_x: np.ndarray
    map_y: np.ndarray
    mask: np.ndarray

    @property
    def reliable(self) -> float:
        """The share of frame t's pixels the warp can be trusted for."""
        return float(self.mask.mean())

    def warp(self, image: np.ndarray) -> np.ndarray:
        """Frame t-1's ``image`` (``(H, W)`` or ``(H, W, C)``, any dtype OpenCV remaps) moved onto frame t."""
        return cv2.remap(image, self.map_x, self.map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def motion(previous: np.ndarray, current: np.ndarray, *, preset: int = METRIC_PRESET,
           scale: float = 1.0) -> Motion:
    """The :class:`Motion` from gray frame ``previous`` (t-1) to gray frame ``current`` (t), both ``uint8 (H, W)``.

    ``scale`` < 1 computes the flow and its check on frames shrunk by that factor (faster); the sampling maps
    and the mask are scaled back up to the full size."""
    height, width = current.shape
    if scale != 1.0:
        size = (max(8, round(width * scale)), max(8, round(height * scale)))
        previous = cv2.resize(previous, size, interpolation=cv2.INTER_AREA)
        current = cv2.resize(current, size, interpolation=cv2.INTER_AREA)
    small_h, small_w = current.shape
    estimator = _estimator(preset)
    # calc(a, b) gives f with a(x) ~ b(x + f(x)): backward = where each pixel of t was in t-1, forward = the reverse.
    bx, by = cv2.split(estimator.calc(current, previous, None))
    forward = estimator.calc(previous, current, None)
    grid_x, grid_y = _grid(small_h, small_w)
    map_x, map_y = grid_x + bx, grid_y + by
    # The forward flow read at where the backward flow points must undo it; the tolerance grows with the motion
    # (Sundaram et al.'s criterion, as in Lai et al.), and a pull from outside frame t-1 is never trusted.
    fx, fy = cv2.split(cv2.remap(forward, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE))
    round_trip = cv2.magnitude(bx + fx, by + fy)
    tolerance = 0.01 * (cv2.magnitude(bx, by) ** 2 + cv2.magnitude(fx, fy) ** 2) + 0.5
    mask = (round_trip * round_trip <= tolerance) & (map_x >= 0) & (map_x <= small_w - 1) & (map_y >= 0) & \
        (map_y <= small_h - 1)
    if scale == 1.0:
        return Motion(map_x=map_x, map_y=map_y, mask=mask)
    factor_x, factor_y = width / small_w, height / small_h
    full_x, full_y = _grid(height, width)
    map_x = full_x + cv2.resize(bx, (width, height), interpolation=cv2.INTER_LINEAR) * factor_x
    map_y = full_y + cv2.resize(by, (width, height), interpolation=cv2.INTER_LINEAR) * factor_y
    mask = cv2.resize(mask.view(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST).view(bool)
    return Motion(map_x=map_x, map_y=map_y, mask=mask)


_grids: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}


def _grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates, ``float32 (H, W)`` each; the same few sizes come back every frame, so they are kept."""
    if (height, width) not in _grids:
        if len(_grids) > 8:
            _grids.clear()
        x, y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
        x.setflags(write=False)
        y.setflags(write=False)
        _grids[(height, width)] = (x, y)
    return _grids[(height, width)]


def warping_error(current: np.ndarray, previous: np.ndarray, move: Motion) -> float:
    """Lai et al.'s warping error of one frame pair: the mean absolute difference, on a 0-1 scale, between frame
    t (``current``) and frame t-1 (``previous``) warped onto it by the input's ``move``, over the pixels its
    check trusts (NaN when it trusts none). Both ``uint8 (H, W, 3)``."""
    if not move.mask.any():
        return float("nan")
    difference = cv2.absdiff(current, move.warp(previous))
    return float(np.mean(cv2.mean(difference, mask=move.mask.view(np.uint8))[:difference.shape[2]]) / 255.0)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio of two ``uint8`` images in dB (inf when they are equal)."""
    difference = cv2.absdiff(a, b).astype(np.float32)
    mse = float(np.mean(difference * difference))
    return float("inf") if mse == 0 else 10.0 * float(np.log10(255.0 ** 2 / mse))
