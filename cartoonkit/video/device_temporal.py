"""Temporal smoothing on a torch device: :class:`~cartoonkit.video.temporal.TemporalSmoother`'s method (its
constants, blend, clip and cut tests) on batches of frames that stay on the device, so that on a GPU the smoothing
no longer waits on one CPU thread's DIS flow (issue 24: that capped a clip at 12 fps at 1080p).

Why batches: the flows of a batch's frame pairs are independent, so they are one batched
:func:`~cartoonkit.video.device_flow.dense_flow` call; the blend is sequential (S_t needs S_t-1), but each step is
a few whole-frame tensor operations. Nothing is read back to the host per frame: a cut is a ``torch.where`` on the
device and the counts (cuts, the share of trusted pixels) stay device tensors until the clip's end reads them.

What differs from the CPU smoother, and why: the flow is dense Lucas-Kanade computed down to half size
(:data:`FLOW_FINEST`), between DIS ``fast`` (the CPU smoother's) and ``medium`` (the metric's) in accuracy
(BENCHMARKS.md, "Flow on the device"), and the warp of the luma is not rounded to integers as ``cv2.remap`` of a
``uint8`` image is. The luma, the histogram, the weights and the rounding of the result are the CPU's.
"""

from __future__ import annotations

import torch

from .device_flow import dense_flow, forward_backward_mask, warp
from .temporal import CUT_HISTOGRAM, CUT_RELIABLE, DEFAULT_STRENGTH, MAX_CHANGE, SIGMA

# The finest pyramid level the flow is computed at (1 = half size): about 4x cheaper than full size, and between
# DIS fast and medium in accuracy on the known-motion tests (full size is as good as medium, at 4x the cost).
FLOW_FINEST = 1
HISTOGRAM_BINS = 64  # as temporal._histogram: 64 bins over the 256 grey levels


def luma(rgb: torch.Tensor) -> torch.Tensor:
    """``(N, 1, H, W)`` float32 luma of ``(N, 3, H, W)`` RGB on the 0-255 scale: OpenCV's ``COLOR_RGB2GRAY``,
    which for ``uint8`` is ``(9798 R + 19235 G + 3735 B + 2**14) >> 15`` (its fixed-point BT.601 weights; plain
    ``0.299 R + 0.587 G + 0.114 B`` rounded differs on about 0.1 % of pixels). In float32 this is exact for
    ``uint8`` values (every partial sum stays below 2**24), so both smoothers see the same grey levels."""
    rgb = rgb.to(torch.float32)
    weighted = rgb[:, 0:1] * 9798.0 + rgb[:, 1:2] * 19235.0 + rgb[:, 2:3] * 3735.0
    return torch.floor((weighted + 16384.0) / 32768.0)


def histograms(lumas: torch.Tensor) -> torch.Tensor:
    """Normalised 64-bin grey-level histograms ``(N, 64)`` of ``(N, 1, H, W)`` lumas, all frames in one
    ``histc`` call (frame n's bins shifted by 64 n; ``bincount`` would read its size back to the host)."""
    count = lumas.shape[0]
    bins = torch.floor(lumas.clamp(0, 255) * (HISTOGRAM_BINS / 256.0))
    offset = torch.arange(count, device=lumas.device, dtype=torch.float32).view(count, 1, 1, 1) * HISTOGRAM_BINS
    # +0.5: each value at its bin's centre, so histc's float arithmetic cannot drop it into a neighbour.
    flat = (bins + offset + 0.5).flatten()
    counts = torch.histc(flat, bins=HISTOGRAM_BINS * count, min=0, max=HISTOGRAM_BINS * count)
    counts = counts.view(count, HISTOGRAM_BINS)
    return counts / counts.sum(1, keepdim=True).clamp(min=1.0)


class DeviceTemporalSmoother:
    """Smooth a clip's cartoon frames with their input frames, a batch of consecutive frames per call, on the
    frames' device; one per clip, batches in frame order. ``strength`` 0-1; 0 returns the cartoons unchanged.

    ``smoother(photos, cartoons)`` takes ``(N, 3, H, W)`` RGB (``uint8``, or float on the 0-255 scale), the inputs
    at the cartoons' size, and returns the smoothed ``uint8 (N, 3, H, W)`` on the same device; on CUDA the call
    only queues work. :attr:`cuts` and :attr:`reliable` read the device: ask at the end of the clip."""

    def __init__(self, strength: float = DEFAULT_STRENGTH):
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"temporal strength {strength}: must be between 0 and 1")
        self.strength = float(strength)
        # The last frame of the batch before: its luma (1, 1, H, W), histogram (1, 64), smoothed frame (1, 3, H, W).
        self._previous: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        self._cuts: torch.Tensor | None = None      # cuts decided on the device
        self._reliable: torch.Tensor | None = None  # sum over frame pairs of the trusted share (0 at a cut)
        self._size_changes = 0                      # restarts at a new frame size, known on the host
        self._pairs = 0

    @property
    def cuts(self) -> int:
        """Scene cuts seen (restarts after the first frame). Reads the device: once, at the end."""
        on_device = int(self._cuts.item()) if self._cuts is not None else 0
        return on_device + self._size_changes

    @property
    def reliable(self) -> float:
        """Mean share of pixels the flow was trusted for, over the frame pairs (0 for a cut). Reads the device."""
        if self._reliable is None or self._pairs == 0:
            return 0.0
        return float(self._reliable.item()) / self._pairs

    def __call__(self, photos: torch.Tensor, cartoons: torch.Tensor) -> torch.Tensor:
        if photos.dim() != 4 or photos.shape[1] != 3 or photos.shape != cartoons.shape:
            raise ValueError(f"photos {tuple(photos.shape)} and cartoons {tuple(cartoons.shape)}: both must be "
                             "(N, 3, H, W) of one shape")
        if self.strength == 0.0:
            return cartoons if cartoons.dtype == torch.uint8 else _round(cartoons.to(torch.float32)).to(torch.uint8)
        with torch.no_grad():
            return self._smooth(photos, cartoons)

    def _smooth(self, photos: torch.Tensor, cartoons: torch.Tensor) -> torch.Tensor:
        count = photos.shape[0]
        lumas = luma(photos)
        hists = histograms(lumas)
        # Float cartoons are rounded to whole levels first, so that both kinds smooth alike.
        cartoons = cartoons.to(torch.float32) if cartoons.dtype == torch.uint8 else _round(cartoons.to(torch.float32))
        previous = self._previous
        if previous is not None and previous[0].shape[-2:] != lumas.shape[-2:]:
            previous = None  # a new frame size: start again, counted as a cut (as the CPU smoother does)
            self._size_changes += 1
        # Frame pairs (t-1, t): from the previous batch's last frame on, or from this batch's second frame at the
        # clip's start (the first frame is its own cartoon).
        first = 1 if previous is None else 0
        before_lumas = lumas[:-1] if previous is None else torch.cat((previous[0], lumas[:-1]))
        before_hists = hists[:-1] if previous is None else torch.cat((previous[1], hists[:-1]))
        pairs = count - first
        smoothed = torch.empty_like(cartoons)
        if first:
            smoothed[0] = cartoons[0]
        if pairs:
            weights, backward = self._weights(before_lumas, lumas[first:], before_hists, hists[first:])
            last = cartoons[0:1] if previous is None else previous[2]
            for pair in range(pairs):
                index = first + pair
                own = cartoons[index:index + 1]
                pull = (warp(last, backward[pair:pair + 1]) - own) * weights[pair:pair + 1]
                last = _round(own + pull.clamp_(-MAX_CHANGE, MAX_CHANGE))
                smoothed[index] = last[0]
        self._previous = (lumas[-1:], hists[-1:], smoothed[-1:])
        return smoothed.to(torch.uint8)

    def _weights(self, before: torch.Tensor, after: torch.Tensor, before_hists: torch.Tensor,
                 after_hists: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """For each pair: the pull's weight ``(P, 1, H, W)`` (0 where the flow is not trusted, everywhere at a cut)
        and the backward flow ``(P, 2, H, W)`` that pulls frame t-1 onto frame t."""
        pairs = after.shape[0]
        # Both directions of every pair in one call: forward (t-1 -> t) first, backward (t -> t-1) after.
        flows = dense_flow(torch.cat((before, after)), torch.cat((after, before)), finest=FLOW_FINEST)
        forward, backward = flows[:pairs], flows[pairs:]
        trusted = forward_backward_mask(forward, backward)
        reliable = trusted.to(torch.float32).mean((1, 2, 3))
        moved = 0.5 * (before_hists - after_hists).abs().sum(1)
        cut = (moved > CUT_HISTOGRAM) | (reliable < CUT_RELIABLE)
        change = (after - warp(before, backward)).abs()
        weights = self.strength * torch.exp(-change / SIGMA)
        weights = torch.where(trusted & ~cut.view(pairs, 1, 1, 1), weights, torch.zeros((), device=weights.device))
        cuts, kept = cut.sum(), torch.where(cut, torch.zeros_like(reliable), reliable).sum()
        self._cuts = cuts if self._cuts is None else self._cuts + cuts
        self._reliable = kept if self._reliable is None else self._reliable + kept
        self._pairs += pairs
        return weights, backward


def _round(values: torch.Tensor) -> torch.Tensor:
    """Whole levels 0-255, rounded as the CPU smoother rounds (``clip(x + 0.5, 0, 255)`` truncated)."""
    return (values + 0.5).clamp_(0, 255).floor_()
