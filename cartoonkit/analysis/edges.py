"""Edge quality: how jagged (staircased, aliased) the edges of an image are, and what preprocessing does to it.

The metric, :func:`jaggedness`
------------------------------
A clean edge, at any angle, has one orientation that changes slowly along it. A jagged edge is the
same edge drawn as a staircase of pixel steps: locally its gradient snaps towards the horizontal, the
vertical or the diagonal, and swings between them from step to step, while its orientation averaged
over a few pixels is still that of the true edge. So, on ``(H, W, 3)`` uint8 images:

1. luma ``Y = 0.299 R + 0.587 G + 0.114 B``; Sobel gradients ``gx``, ``gy`` (replicated borders);
2. the local orientation of each pixel in doubled-angle form, ``(gx² - gy², 2 gx gy)`` (so an edge and
   its reverse agree), and the smoothed orientation: the same vectors summed over a Gaussian window of
   ``sigma`` pixels (the structure tensor), whose direction is the dominant orientation there;
3. on edge pixels (gradient magnitude at least ``threshold`` times the 99th percentile of the image's
   magnitudes), the angle between the local and the smoothed orientation, in degrees (0 to 90);
4. the mean of that angle over the edge pixels, weighted by squared gradient magnitude (the strongest
   edges, where staircases show, count most).

Why this measures jaggies: an anti-aliased edge keeps its local orientation within a degree or two of
the smoothed one whatever its angle (Sobel on a smooth ramp is nearly isotropic), so it scores low; a
staircase of the same edge swings by tens of degrees around it and scores high; supersampling the
staircase (2x, 4x, 8x) lowers the score step by step (``tests/test_edges.py`` checks all three on
rendered discs and lines). Straight horizontal and vertical edges score near 0 whether aliased or not,
which is right: they have no staircase. What it does not separate from jaggies: real detail whose
orientation changes within ``sigma`` pixels (hair, texture, tight corners), so scores compare versions
of the *same* picture at the *same* size (one photo under several preprocessing settings), not
different photos. Units: degrees of orientation jitter along edges; lower is smoother.

:func:`jaggedness_reference` computes the same number with plain Python loops, pixel by pixel, as an
independent check of the vectorised version.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

SIGMA = 1.5
THRESHOLD = 0.3
PERCENTILE = 99.0
_LUMA = np.array([0.299, 0.587, 0.114])
_SOBEL_SMOOTH = np.array([1.0, 2.0, 1.0])
_SOBEL_DIFF = np.array([-1.0, 0.0, 1.0])


def gaussian_kernel(sigma: float) -> np.ndarray:
    """1-D Gaussian weights over ``[-ceil(3 sigma), ceil(3 sigma)]``, summing to 1."""
    radius = max(1, math.ceil(3 * sigma))
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    weights = np.exp(-0.5 * (x / sigma) ** 2)
    return weights / weights.sum()


def _luma(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] < 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 image, got {image.dtype} {image.shape}")
    return image[..., :3].astype(np.float64) @ _LUMA


def _correlate_1d(a: np.ndarray, kernel: np.ndarray, axis: int) -> np.ndarray:
    """``sum_k kernel[k] * a[i + k - r]`` along ``axis`` with replicated borders (the size is kept)."""
    r = len(kernel) // 2
    pad = [(0, 0), (0, 0)]
    pad[axis] = (r, r)
    padded = np.pad(a, pad, mode="edge")
    n = a.shape[axis]
    out = np.zeros_like(a)
    for k, weight in enumerate(kernel):
        out += weight * (padded[k:k + n] if axis == 0 else padded[:, k:k + n])
    return out


def _sobel(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    gx = _correlate_1d(_correlate_1d(y, _SOBEL_DIFF, 1), _SOBEL_SMOOTH, 0)
    gy = _correlate_1d(_correlate_1d(y, _SOBEL_DIFF, 0), _SOBEL_SMOOTH, 1)
    return gx, gy


def _edge_threshold(magnitude: np.ndarray, threshold: float) -> float:
    return max(threshold * float(np.percentile(magnitude, PERCENTILE)), 1e-6)


def orientation_deviation(image: np.ndarray, sigma: float = SIGMA,
                          threshold: float = THRESHOLD) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel deviation (degrees) of the local edge orientation from the smoothed one, and the
    weight of each pixel (squared gradient magnitude on edge pixels, 0 elsewhere); both ``(H, W)``."""
    gx, gy = _sobel(_luma(image))
    c, s = gx * gx - gy * gy, 2 * gx * gy  # doubled-angle orientation, length = magnitude squared
    kernel = gaussian_kernel(sigma)
    c_smooth = _correlate_1d(_correlate_1d(c, kernel, 0), kernel, 1)
    s_smooth = _correlate_1d(_correlate_1d(s, kernel, 0), kernel, 1)
    doubled = np.arctan2(s, c) - np.arctan2(s_smooth, c_smooth)
    deviation = np.degrees(np.abs(np.arctan2(np.sin(doubled), np.cos(doubled)))) / 2
    magnitude = np.hypot(gx, gy)
    weight = np.where(magnitude >= _edge_threshold(magnitude, threshold), magnitude ** 2, 0.0)
    return deviation, weight


def jaggedness(image: np.ndarray, sigma: float = SIGMA, threshold: float = THRESHOLD) -> float:
    """Edge jaggies of an ``(H, W, 3)`` uint8 image: mean orientation jitter along its edges, in degrees
    (see the module docstring). Lower is smoother; 0 for an image without edges."""
    deviation, weight = orientation_deviation(image, sigma, threshold)
    total = weight.sum()
    return float((deviation * weight).sum() / total) if total > 0 else 0.0


def detail(image: np.ndarray) -> float:
    """Mean Sobel gradient magnitude of the luma (0-255 scale): how much edge and texture an image has.
    Read it beside :func:`jaggedness`: a blur lowers jaggies partly by removing detail, which this shows."""
    gx, gy = _sobel(_luma(image))
    return float(np.hypot(gx, gy).mean())


def jaggedness_reference(image: np.ndarray, sigma: float = SIGMA, threshold: float = THRESHOLD) -> float:
    """:func:`jaggedness` computed pixel by pixel with plain loops (slow: for tests on small images)."""
    y = _luma(image).tolist()
    h, w = len(y), len(y[0])

    def at(rows, i, j):
        return rows[min(max(i, 0), h - 1)][min(max(j, 0), w - 1)]

    sobel_x = [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]
    gx = [[0.0] * w for _ in range(h)]
    gy = [[0.0] * w for _ in range(h)]
    for i in range(h):
        for j in range(w):
            for di in range(3):
                for dj in range(3):
                    gx[i][j] += sobel_x[di][dj] * at(y, i + di - 1, j + dj - 1)
                    gy[i][j] += sobel_x[dj][di] * at(y, i + di - 1, j + dj - 1)
    c = [[gx[i][j] ** 2 - gy[i][j] ** 2 for j in range(w)] for i in range(h)]
    s = [[2 * gx[i][j] * gy[i][j] for j in range(w)] for i in range(h)]
    radius = max(1, math.ceil(3 * sigma))
    g = [math.exp(-0.5 * (k / sigma) ** 2) for k in range(-radius, radius + 1)]
    norm = sum(g) ** 2
    magnitudes = sorted(math.hypot(gx[i][j], gy[i][j]) for i in range(h) for j in range(w))
    position = (len(magnitudes) - 1) * PERCENTILE / 100  # numpy's default (linear) percentile
    low = math.floor(position)
    high = min(low + 1, len(magnitudes) - 1)
    percentile = magnitudes[low] + (magnitudes[high] - magnitudes[low]) * (position - low)
    cutoff = max(threshold * percentile, 1e-6)
    numerator = denominator = 0.0
    for i in range(h):
        for j in range(w):
            magnitude = math.hypot(gx[i][j], gy[i][j])
            if magnitude < cutoff:
                continue
            cs = ss = 0.0
            for a in range(-radius, radius + 1):
                for b in range(-radius, radius + 1):
                    weight = g[a + radius] * g[b + radius] / norm
                    cs += weight * at(c, i + a, j + b)
                    ss += weight * at(s, i + a, j + b)
            diff = math.atan2(s[i][j], c[i][j]) - math.atan2(ss, cs)
            deviation = math.degrees(abs(math.atan2(math.sin(diff), math.cos(diff)))) / 2
            numerator += deviation * magnitude ** 2
            denominator += magnitude ** 2
    return numerator / denominator if denominator > 0 else 0.0


# --------------------------------------------------------------------------- test pictures


def render_disc(size: int = 96, radius: float = 30.0, supersample: int = 1, center: tuple[float, float] | None = None,
                foreground: int = 0, background: int = 255) -> np.ndarray:
    """A disc drawn on a ``size x size`` canvas, ``(H, W, 3)`` uint8. ``supersample`` 1 is the hard,
    aliased drawing (each pixel in or out by its centre); ``n`` averages ``n x n`` samples per pixel
    (anti-aliased, smoother as ``n`` grows)."""
    cy, cx = center if center is not None else (size / 2 + 0.3, size / 2 - 0.2)
    offsets = (np.arange(supersample) + 0.5) / supersample
    coverage = np.zeros((size, size))
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
    for oy in offsets:
        for ox in offsets:
            coverage += (rows + oy - cy) ** 2 + (cols + ox - cx) ** 2 <= radius ** 2
    coverage /= supersample ** 2
    value = background + (foreground - background) * coverage
    return np.repeat(np.rint(value).astype(np.uint8)[..., None], 3, axis=2)


def render_line(size: int = 96, angle_degrees: float = 25.0, width: float = 12.0, supersample: int = 1) -> np.ndarray:
    """A dark band ``width`` pixels wide through the centre at ``angle_degrees``, drawn like
    :func:`render_disc` (``supersample`` 1 aliased, more samples anti-aliased)."""
    theta = math.radians(angle_degrees)
    normal = (-math.sin(theta), math.cos(theta))
    offsets = (np.arange(supersample) + 0.5) / supersample
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
    coverage = np.zeros((size, size))
    for oy in offsets:
        for ox in offsets:
            distance = (cols + ox - size / 2) * normal[0] + (rows + oy - size / 2) * normal[1]
            coverage += np.abs(distance) <= width / 2
    coverage /= supersample ** 2
    return np.repeat(np.rint(255 * (1 - coverage)).astype(np.uint8)[..., None], 3, axis=2)


# --------------------------------------------------------------------------- preprocessing variants

# (label, upscale, denoise, beautify): each step alone, the claimed combination, and everything together.
PREPROCESSING_VARIANTS: tuple[tuple[str, float, int, float], ...] = (
    ("baseline", 1.0, 0, 0.0),
    ("upscale 1.2", 1.2, 0, 0.0),
    ("upscale 1.5", 1.5, 0, 0.0),
    ("denoise 3", 1.0, 3, 0.0),
    ("denoise 5", 1.0, 5, 0.0),
    ("upscale 1.2 + denoise 3 (the claim)", 1.2, 3, 0.0),
    ("beautify 0.5", 1.0, 0, 0.5),
    ("upscale 1.2 + denoise 3 + beautify 0.5", 1.2, 3, 0.5),
)
BASELINE = "baseline"
CLAIMED = "upscale 1.2 + denoise 3 (the claim)"


@dataclass
class VariantRow:
    photo: str
    variant: str
    upscale: float
    denoise: int
    beautify: float
    jaggedness: float       # degrees, see jaggedness(); lower is smoother
    change_vs_baseline: float  # relative: -0.25 = 25 % fewer jaggies than the baseline of the same photo
    detail: float           # see detail(): mean gradient magnitude
    detail_vs_baseline: float  # relative, like change_vs_baseline
    ms: float               # Cartoonizer.process, median of the repeats


def run_preprocessing_variants(cartoonizer, decoded, resolution: int, style_weight: float = 1.0,
                               variants: Sequence[tuple[str, float, int, float]] = PREPROCESSING_VARIANTS,
                               repeats: int = 1, warmup: bool = True) -> tuple[list[dict], dict[str, np.ndarray]]:
    """Cartoonize one decoded photo (:class:`~cartoonkit.imageio.DecodedImage`) under each preprocessing
    variant at output size ``resolution``; returns the table (one dict per variant, :class:`VariantRow`
    fields) and each variant's ``(H, W, 3)`` uint8 result by label. The first variant is the baseline
    the changes are relative to. ``warmup``: one untimed run per variant first (off: the times include
    first-call costs, but it takes half as long)."""
    from ..config import CartoonConfig

    rows, images = [], {}
    for label, upscale, kernel, strength in variants:
        config = CartoonConfig(style_weight=style_weight, resolution=resolution, upscale=upscale, denoise=kernel,
                               beautify=strength)
        if warmup:
            cartoonizer.process(decoded, config)  # first-call costs for this shape stay out of the time
        times = []
        for _ in range(max(1, repeats)):
            start = time.perf_counter()
            result = cartoonizer.process(decoded, config)
            times.append(time.perf_counter() - start)
        image = result.rgb.permute(1, 2, 0).cpu().numpy()
        images[label] = image
        rows.append(VariantRow(decoded.name.rsplit("/", 1)[-1], label, upscale, kernel, strength, jaggedness(image),
                               0.0, detail(image), 0.0, 1e3 * float(np.median(times))))
    base, base_detail = rows[0].jaggedness, rows[0].detail
    for row in rows:
        row.change_vs_baseline = row.jaggedness / base - 1 if base > 0 else 0.0
        row.detail_vs_baseline = row.detail / base_detail - 1 if base_detail > 0 else 0.0
    return [asdict(r) for r in rows], images


def claim_verdict(rows: Sequence[dict], claimed_reduction: float = 0.62, variant: str = CLAIMED,
                  baseline: str = BASELINE, tolerance: float = 0.15) -> dict:
    """Compare the measured jaggies reduction of ``variant`` against ``baseline`` (per photo, then the
    median over photos) with the claimed reduction. ``tolerance``: how far (absolute, as a fraction) the
    measured median may be from the claim and still count as confirmed.

    Returns ``{"claimed", "measured_median", "per_photo", "verdict"}``; ``verdict`` is one sentence.
    """
    by_photo: dict[str, dict[str, float]] = {}
    for row in rows:
        by_photo.setdefault(row["photo"], {})[row["variant"]] = row["jaggedness"]
    per_photo = {photo: 1 - scores[variant] / scores[baseline] for photo, scores in by_photo.items()
                 if variant in scores and baseline in scores and scores[baseline] > 0}
    if not per_photo:
        raise ValueError(f"no photo has both {baseline!r} and {variant!r} rows")
    measured = float(np.median(list(per_photo.values())))
    if abs(measured - claimed_reduction) <= tolerance:
        judgement = "consistent with the claim"
    elif measured < claimed_reduction:
        judgement = "the claim overstates it" if measured > 0 else "not confirmed: no reduction at all"
    else:
        judgement = "a larger reduction than claimed"
    verdict = (f"{variant} vs {baseline}: median jaggies reduction {100 * measured:.1f} % over {len(per_photo)} "
               f"photo(s) (claimed {100 * claimed_reduction:.0f} %): {judgement}.")
    return {"claimed": claimed_reduction, "measured_median": measured, "per_photo": per_photo, "verdict": verdict}


# --------------------------------------------------------------------------- colour handling


def cartoonize_swapped_channels(cartoonizer, photo, style_weight: float = 1.0):
    """What feeding the network RGB instead of BGR gives: the ``(3, H, W)`` uint8 RGB photo (already
    at the network size, see :meth:`~cartoonkit.pipeline.Cartoonizer.prepare`) goes through
    :meth:`~cartoonkit.pipeline.Cartoonizer.run_network` with its channels reversed, and the result
    is reversed back, so red and blue trade places on the network's input only."""
    swapped = cartoonizer.run_network([photo.flip(0)], style_weight)[0]
    return swapped.flip(0)


def colour_shift(reference: np.ndarray, other: np.ndarray) -> dict[str, float]:
    """How ``other`` differs in colour from ``reference`` (both ``(H, W, 3)`` uint8 RGB, same size), in
    CIELAB: mean ΔE (CIE76), and the mean change of lightness ``L*``, of ``a*`` (+ towards red/magenta) and
    of ``b*`` (+ towards yellow, - towards blue)."""
    from skimage.color import rgb2lab

    if reference.shape != other.shape:
        raise ValueError(f"images differ in shape: {reference.shape} vs {other.shape}")
    lab_ref, lab_other = rgb2lab(reference[..., :3]), rgb2lab(other[..., :3])
    diff = lab_other - lab_ref
    return {"delta_e": float(np.sqrt((diff ** 2).sum(axis=2)).mean()), "delta_L": float(diff[..., 0].mean()),
            "delta_a": float(diff[..., 1].mean()), "delta_b": float(diff[..., 2].mean())}


# --------------------------------------------------------------------------- looking closer


def strongest_edge_window(image: np.ndarray, size: int = 48) -> tuple[int, int]:
    """``(top, left)`` of the ``size x size`` window holding the most edge weight (where jaggies show)."""
    size = min(size, image.shape[0], image.shape[1])
    _, weight = orientation_deviation(image)
    integral = np.pad(weight, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    sums = integral[size:, size:] - integral[:-size, size:] - integral[size:, :-size] + integral[:-size, :-size]
    top, left = np.unravel_index(int(np.argmax(sums)), sums.shape)
    return int(top), int(left)


def zoom(image: np.ndarray, top: int, left: int, size: int = 48, factor: int = 4) -> np.ndarray:
    """The ``size x size`` crop at ``(top, left)``, enlarged ``factor`` times with nearest neighbour (so
    every pixel, and every staircase, stays visible)."""
    crop = image[top:top + size, left:left + size]
    return np.repeat(np.repeat(crop, factor, axis=0), factor, axis=1)


def variants_chart(rows: Sequence[dict]):
    """A plotly bar chart: each variant's change in jaggies (and in detail) against the baseline, per photo."""
    import plotly.graph_objects as go

    figure = go.Figure()
    for photo in dict.fromkeys(r["photo"] for r in rows):
        mine = [r for r in rows if r["photo"] == photo]
        figure.add_trace(go.Bar(x=[r["variant"] for r in mine], y=[100 * r["change_vs_baseline"] for r in mine],
                                name=f"{photo}: jaggies"))
        figure.add_trace(go.Bar(x=[r["variant"] for r in mine], y=[100 * r["detail_vs_baseline"] for r in mine],
                                name=f"{photo}: detail", opacity=0.45))
    figure.update_layout(barmode="group", title="Change against the baseline (%): jaggies, and detail beside it",
                         yaxis_title="% vs baseline (negative = less)", height=480)
    return figure
