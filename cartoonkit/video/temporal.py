"""Temporal smoothing: flicker reduced by pulling each cartoon frame towards the previous smoothed one, moved
along the input's optical flow, wherever the input says the scene is the same there.

Why this method: the network sees each frame alone, so tiny changes in the input (noise, compression, a
slight move) change where it draws lines and how it flattens areas, which a viewer sees as boiling. What
should stay still is known from the input itself: a pixel whose input moved consistently (forward-backward
check) and kept its brightness (photometric check on the luma Y) should keep its cartoon colour too.
Blending there with the warped previous output removes the boil; everywhere else (occlusions, new content,
a cut) the frame's own cartoon is kept as it is, so nothing trails behind a moving head. It needs no
training and no second network, costs two fast DIS flows per frame, and with strength 0 it is exactly
frame by frame. A learned method (Lai et al.'s recurrent network) would need training per style; blind
deflickering of whole frames (colour/brightness only) leaves the line shimmer, which is most of what this
network's flicker is.

The flow is DIS ``fast`` on the frames at the cartoon's size (see ``FLOW_SCALE`` for why not half size).

The blend for frame t, with W(.) the warp from t-1 to t::

    S_t = O_t + w * (W(S_{t-1}) - O_t),  w = strength * reliable * exp(-|Y_t - W(Y_{t-1})| / SIGMA)

and the change it makes to any pixel is clipped to ``MAX_CHANGE`` levels, so the smoothed frame stays within
a few levels of the frame-by-frame one (what the PSNR against it measures). A cut (the grey-level histogram
changes a lot, or the flow trusts too little of the frame) starts again from the frame's own cartoon.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..run_options import VideoOptions
from .flow import SMOOTH_PRESET, gray, motion

DEFAULT_STRENGTH = VideoOptions.temporal  # declared once, with the video's other options
SIGMA = 6.0            # input levels: a pixel whose input changed by this keeps exp(-1) of the pull
MAX_CHANGE = 12.0      # levels: the most the smoothing moves any pixel away from its frame-by-frame cartoon
CUT_HISTOGRAM = 0.5    # half the grey-level histogram's mass moved: a new shot
CUT_RELIABLE = 0.3     # the flow trusts under 30 % of the frame: as good as a new shot
# Flow at the cartoon's full size (issue 24). On half-size frames (the first version) the warp was off by a pixel
# or two on fast motion (15 fps close-ups, a panning camera), so the pull drew the cartoon away from its own frame
# (lower PSNR) without steadying it (the same warping error): on the tuning clips full size took a pan from 1.19x to
# 1.09x the input's warping error at the same PSNR, and did not lose anywhere. A wider cap or a looser
# photometric weight only moved along the same trade-off (less flicker, lower PSNR). It stays the `fast` preset,
# not the metric's `medium`, so the smoother is not judged by the very flow it followed.
FLOW_SCALE = 1.0


@dataclass
class Step:
    """What the smoother did to one frame."""

    frame: np.ndarray      # the smoothed cartoon, uint8 (H, W, 3)
    cut: bool              # started again here at a cut (the first frame starts without being one)
    reliable: float        # share of pixels the flow was trusted for (0 at a cut)


class TemporalSmoother:
    """Smooth a sequence of cartoon frames with their input frames (both ``uint8 (H, W, 3)`` RGB, same size);
    one per clip, called in frame order. ``strength`` 0-1; 0 returns each cartoon unchanged."""

    def __init__(self, strength: float = DEFAULT_STRENGTH):
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"temporal strength {strength}: must be between 0 and 1")
        self.strength = float(strength)
        self.cuts = 0  # scene cuts seen (restarts after the first frame)
        # The photometric weight by grey-level change, 0-255, looked up rather than computed per pixel.
        self._falloff = (self.strength * np.exp(-np.arange(256, dtype=np.float32) / SIGMA)).astype(np.float32)
        self._previous: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # luma, histogram, smoothed

    def __call__(self, photo: np.ndarray, cartoon: np.ndarray) -> Step:
        if self.strength == 0.0:
            return Step(cartoon, cut=False, reliable=0.0)
        luma = gray(photo)
        histogram = _histogram(luma)
        previous, self._previous = self._previous, None
        if previous is None or previous[0].shape != luma.shape or _histogram_change(previous[1], histogram) > \
                CUT_HISTOGRAM:
            return self._restart(luma, histogram, cartoon, cut=previous is not None)
        prev_luma, _, prev_smoothed = previous
        move = motion(prev_luma, luma, preset=SMOOTH_PRESET, scale=FLOW_SCALE)
        if move.reliable < CUT_RELIABLE:
            return self._restart(luma, histogram, cartoon, cut=True)
        change = cv2.absdiff(luma, move.warp(prev_luma))
        weight = cv2.LUT(change, self._falloff)
        weight[~move.mask] = 0.0
        pull = cv2.subtract(move.warp(prev_smoothed), cartoon, dtype=cv2.CV_32F)
        pull *= weight[..., None]
        np.clip(pull, -MAX_CHANGE, MAX_CHANGE, out=pull)
        pull += cartoon
        smoothed = np.clip(pull + 0.5, 0, 255).astype(np.uint8)  # +0.5: round, do not truncate
        self._previous = (luma, histogram, smoothed)
        return Step(smoothed, cut=False, reliable=move.reliable)

    def _restart(self, luma, histogram, cartoon, *, cut: bool) -> Step:
        self.cuts += cut
        self._previous = (luma, histogram, cartoon)
        return Step(cartoon, cut=cut, reliable=0.0)


def _histogram(luma: np.ndarray) -> np.ndarray:
    counts = cv2.calcHist([luma], [0], None, [64], [0, 256]).ravel()
    return counts / max(counts.sum(), 1.0)


def _histogram_change(a: np.ndarray, b: np.ndarray) -> float:
    """Half the L1 distance of two normalised histograms: the share of pixels that changed grey-level bin."""
    return float(0.5 * np.abs(a - b).sum())
