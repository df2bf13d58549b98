"""Dense optical flow on a torch device: coarse-to-fine Lucas-Kanade, the warp it gives and the forward-backward
check, for a batch of frame pairs at once (issue 24: the smoother's flow where it is cheapest, on the GPU).

The method is DIS (Kroeger et al. 2016, what :mod:`cartoonkit.video.flow` runs through OpenCV) made dense, so
that every step is a whole-tensor operation: where DIS aligns 8x8 patches on a sparse grid by inverse search and
then averages the overlapping patches' flows, here every pixel is the centre of a Gaussian window, the 2x2
Lucas-Kanade system of every window is built with separable convolutions and solved in closed form, and the
averaging is a confidence-weighted blur of the flow. No Python loop runs over pixels or frames, nothing is read
back to the host (no ``.item()``, no ``.cpu()``, no data-dependent branch), so on CUDA a call queues kernels and
returns; frame pairs are independent, so a batch of ``N`` pairs is ``N`` along the batch axis.

Conventions are OpenCV's: flow ``(N, 2, H, W)`` in pixels, channel 0 x and channel 1 y, and ``flow`` from
``prev`` to ``next`` means ``next(x + u, y + v) ~ prev(x, y)``, so ``warp(next, flow) ~ prev``.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

# Tikhonov term added to the structure tensor's diagonal (intensity^2 per pixel^2, 0-255 scale), pulling towards
# the flow a pixel has now: where a window has no texture the flow keeps what the coarser level said instead of
# dividing by a near-singular matrix. Small next to a textured window's tensor (hundreds to thousands).
REGULARISATION = 4.0


def dense_flow(prev: torch.Tensor, next: torch.Tensor, *, levels: int | None = None, iterations: int = 4,
               sigma: float = 3.0, finest: int = 0, smooth: float = 1.5) -> torch.Tensor:
    """Flow ``(N, 2, H, W)`` float32 in pixels from grey frames ``prev`` to ``next``, each ``(N, 1, H, W)``
    (or ``(1, H, W)``/``(H, W)``) ``uint8`` or float on the same 0-255 scale, on any device.

    ``levels``: pyramid levels below full size (default: halve until the coarse frame is about 24 pixels on its
    short side, so motion up to a few tens of pixels at full size is found). ``iterations``: Lucas-Kanade steps
    per level (more hardly changes the result on real frames). ``sigma``: the Gaussian window's standard
    deviation in pixels of each level (3: about as wide as DIS's overlapping 8-pixel patches). ``finest``: the
    finest level computed (1 = half size, as DIS's ``medium`` preset; 2 = quarter size, as ``fast``), upsampled
    to full size after: about 4x faster per level skipped, less sub-pixel accuracy. ``smooth``: the
    confidence-weighted blur of the flow after each level (0 turns it off)."""
    prev, next = _as_batch(prev), _as_batch(next)
    if prev.shape != next.shape:
        raise ValueError(f"prev {tuple(prev.shape)} and next {tuple(next.shape)} differ in shape")
    height, width = prev.shape[-2:]
    if levels is None:
        levels = max(0, int(math.log2(max(1, min(height, width)) / 24)))
    levels = max(levels, finest)
    pyramid0, pyramid1 = _pyramid(prev, levels), _pyramid(next, levels)
    flow = prev.new_zeros((prev.shape[0], 2, *pyramid0[-1].shape[-2:]))
    for level in range(levels, finest - 1, -1):
        flow = _resize_flow(flow, pyramid0[level].shape[-2:])
        flow = _refine(pyramid0[level], pyramid1[level], flow, iterations, sigma, smooth)
    return _resize_flow(flow, (height, width))


def warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """``image`` ``(N, C, H, W)`` sampled at ``(x + u, y + v)``: bilinear, edge pixels repeated outside, as
    :meth:`cartoonkit.video.flow.Motion.warp` (``cv2.remap``, ``INTER_LINEAR``, ``BORDER_REPLICATE``). With the
    forward flow of a pair, ``warp(next, flow)`` is ``next`` moved onto ``prev``. Float in, float out."""
    height, width = image.shape[-2:]
    # grid_sample wants coordinates in [-1, 1]; with align_corners=True, -1 and 1 are the centres of the first
    # and last pixels, which is cv2.remap's convention (pixel i at coordinate i). "border" clamps the coordinate,
    # which for bilinear is the same as replicating the edge pixels.
    x = torch.arange(width, device=flow.device, dtype=flow.dtype)
    y = torch.arange(height, device=flow.device, dtype=flow.dtype)
    gx = (x + flow[:, 0]) * (2.0 / max(width - 1, 1)) - 1.0
    gy = (y[:, None] + flow[:, 1]) * (2.0 / max(height - 1, 1)) - 1.0
    grid = torch.stack((gx, gy), dim=-1)
    return F.grid_sample(image.to(flow.dtype), grid, mode="bilinear", padding_mode="border", align_corners=True)


def forward_backward_mask(forward: torch.Tensor, backward: torch.Tensor) -> torch.Tensor:
    """The pixels of ``next`` whose pull from ``prev`` can be trusted, bool ``(N, 1, H, W)``: the check of
    :func:`cartoonkit.video.flow.motion` (Sundaram et al. 2010) with the same thresholds. ``forward`` is the flow
    from ``prev`` to ``next``, ``backward`` from ``next`` to ``prev``, both ``(N, 2, H, W)``.

    The forward flow read where the backward flow points must undo it, within a tolerance that grows with the
    motion; a pull from outside ``prev`` is never trusted."""
    forward_there = warp(forward, backward)
    round_trip = ((backward + forward_there) ** 2).sum(1, keepdim=True)
    tolerance = 0.01 * ((backward ** 2).sum(1, keepdim=True) + (forward_there ** 2).sum(1, keepdim=True)) + 0.5
    return (round_trip <= tolerance) & (_inside(backward) > 0)


def _as_batch(frames: torch.Tensor) -> torch.Tensor:
    """``(N, 1, H, W)`` float32 on the 0-255 scale from a grey frame or batch of them."""
    while frames.dim() < 4:
        frames = frames.unsqueeze(0)
    if frames.shape[1] != 1:
        raise ValueError(f"grey frames (N, 1, H, W) expected, got {tuple(frames.shape)}")
    return frames.to(torch.float32)


def _pyramid(image: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """Full size first, then each level half the one before (2x2 means: cv2.INTER_AREA's halving, which keeps
    the pyramid free of aliasing without a separate blur)."""
    pyramid = [image]
    for _ in range(levels):
        pyramid.append(F.avg_pool2d(pyramid[-1], 2, ceil_mode=True))
    return pyramid


def _resize_flow(flow: torch.Tensor, size) -> torch.Tensor:
    """``flow`` resampled to ``size`` (H, W) with its vectors scaled by the same factors: a coarser level's
    answer becomes the finer level's starting point."""
    if tuple(flow.shape[-2:]) == tuple(size):
        return flow
    resized = F.interpolate(flow, size=tuple(size), mode="bilinear", align_corners=False)
    # Python-number factors: no small tensor copied from the host on every call.
    return torch.cat((resized[:, 0:1] * (size[1] / flow.shape[-1]), resized[:, 1:2] * (size[0] / flow.shape[-2])), 1)


def _gaussian(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of every channel (edges repeated): the window sums of Lucas-Kanade, as two 1-D
    depthwise convolutions (one small kernel per channel, the cheapest form on both CPU and GPU)."""
    kernel = _gaussian_kernel(sigma, image.device, image.dtype)
    radius = kernel.numel() // 2
    channels = image.shape[1]
    image = F.pad(image, (radius, radius, radius, radius), mode="replicate")
    image = F.conv2d(image, kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    return F.conv2d(image, kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)


def _inside(flow: torch.Tensor) -> torch.Tensor:
    """1 where ``x + flow`` lands inside the frame, else 0, ``(N, 1, H, W)`` in ``flow``'s dtype."""
    height, width = flow.shape[-2:]
    x = torch.arange(width, device=flow.device, dtype=flow.dtype) + flow[:, 0:1]
    y = torch.arange(height, device=flow.device, dtype=flow.dtype)[:, None] + flow[:, 1:2]
    return ((x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)).to(flow.dtype)


def _gradient(image: torch.Tensor) -> torch.Tensor:
    """Sobel derivatives (x, y) ``(N, 2, H, W)`` in intensity per pixel: central differences smoothed across,
    less sensitive to noise than plain differences."""
    return F.conv2d(F.pad(image, (1, 1, 1, 1), mode="replicate"), _sobel_kernels(image.device, image.dtype))


# The small kernels, made once per device: built on the host and copied on every call, they would cost a
# host-to-device copy per level and iteration on CUDA.
@functools.lru_cache(maxsize=32)
def _gaussian_kernel(sigma: float, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    radius = max(1, int(math.ceil(2.5 * sigma)))
    taps = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    return (kernel / kernel.sum()).to(device=device, dtype=dtype)


@functools.lru_cache(maxsize=8)
def _sobel_kernels(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    kernel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 8.0
    return torch.stack((kernel, kernel.t())).unsqueeze(1).to(device=device, dtype=dtype)


def _refine(frame0: torch.Tensor, frame1: torch.Tensor, flow: torch.Tensor, iterations: int, sigma: float,
            smooth: float) -> torch.Tensor:
    """``flow`` from ``frame0`` to ``frame1`` improved by ``iterations`` dense Lucas-Kanade steps, then blurred
    where it is unsure.

    Each pixel's window is assumed to move as one (DIS's patch), linearised around the flow each of its pixels
    has now, with ``frame0``'s gradient g (inverse compositional, Baker and Matthews 2004, as DIS's inverse
    search: the gradient does not move, so the window's structure tensor is computed once per level). The
    window's least-squares flow u' then solves

        sum_w(g g^T) u' = sum_w(g g^T u - g e),   e = frame1(x + u) - frame0(x),

    with u each pixel's current flow. Using the window's own pixels' flows on the right, not the centre's, is
    what keeps the iteration stable: a step computed from neighbours' errors but applied to the centre's flow
    alone lets high-frequency wobble grow with every iteration."""
    grad = _gradient(frame0)
    gx, gy = grad[:, 0:1], grad[:, 1:2]
    gxx, gxy, gyy = gx * gx, gx * gy, gy * gy
    tensor = _gaussian(torch.cat((gxx, gxy, gyy), 1), sigma)
    a = tensor[:, 0:1] + REGULARISATION
    b = tensor[:, 1:2]
    c = tensor[:, 2:3] + REGULARISATION
    det = a * c - b * b  # > 0: the regularisation makes every window's matrix positive definite
    for _ in range(iterations):
        u, v = flow[:, 0:1], flow[:, 1:2]
        # Where the flow points outside frame1 the warp repeats the edge, so the error no longer changes with
        # the flow and a Gauss-Newton step would push on without end: there the data term is left out.
        error = (warp(frame1, flow) - frame0) * _inside(flow)
        rhs = _gaussian(torch.cat((gxx * u + gxy * v - gx * error, gxy * u + gyy * v - gy * error), 1), sigma)
        # The regularisation pulls towards the pixel's current flow: in a window without texture nothing moves.
        rx, ry = rhs[:, 0:1] + REGULARISATION * u, rhs[:, 1:2] + REGULARISATION * v
        flow = torch.cat(((c * rx - b * ry) / det, (a * ry - b * rx) / det), 1)
    if smooth > 0:
        # DIS's densification, dense: each pixel's flow becomes an average of its neighbours' weighted by how
        # well they match (1 / photometric error, as DIS) and how textured their window is (the smaller
        # eigenvalue of the tensor: a flat or edge-only window says little about the motion).
        error = (warp(frame1, flow) - frame0).abs()
        texture = 0.5 * (a + c) - torch.sqrt(0.25 * (a - c) ** 2 + b * b)
        weight = texture / (error.clamp(min=1.0) * (texture + 100.0))
        flow = _gaussian(flow * weight, smooth) / _gaussian(weight, smooth).clamp(min=1e-6)
    return flow
