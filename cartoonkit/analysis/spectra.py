"""2-D DCT spectra of images and their energy per frequency band: what ``style_weight`` changes.

Spectra are of the luma (ITU-R BT.601 weights), orthonormal DCT-II (``scipy.fft.dctn``), so the
transform is linear and keeps energy: the sum of squared coefficients equals the sum of squared
pixels (Parseval), and the spectrum of ``w * a + (1 - w) * b`` is ``w * S(a) + (1 - w) * S(b)``.

Frequency bands. Coefficient ``(u, v)`` of an ``H x W`` image is the cosine of ``u / (2H)`` cycles
per pixel down the rows and ``v / (2W)`` across the columns; its radial frequency is
``f = sqrt((u / 2H)^2 + (v / 2W)^2)`` cycles per pixel, from 0 up to ``0.5 * sqrt(2)`` in the corner.
With ``bands = n``, band ``k`` holds the AC coefficients with ``k * 0.5 / n <= f < (k + 1) * 0.5 / n``;
the last band also holds the corner coefficients with ``f >= 0.5``. The DC coefficient (the mean
brightness) is in no band.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.fft import dctn

LUMA_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R BT.601, as JPEG uses
NYQUIST = 0.5  # cycles per pixel


def luma(image: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` RGB (any dtype, 0..255) -> ``(H, W)`` float64 luma; an ``(H, W)`` array is returned as float64."""
    image = np.asarray(image)
    if image.ndim == 2:
        return image.astype(np.float64)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected (H, W, 3) or (H, W), got {image.shape}")
    return image.astype(np.float64) @ np.array(LUMA_WEIGHTS)


def dct_spectrum(image: np.ndarray) -> np.ndarray:
    """Orthonormal 2-D DCT-II of the luma: ``(H, W)`` float64, coefficient ``[0, 0]`` the DC term."""
    return dctn(luma(image), type=2, norm="ortho")


def radial_frequency(height: int, width: int) -> np.ndarray:
    """``(H, W)`` radial frequency of every DCT coefficient in cycles per pixel (see the module docstring)."""
    u = np.arange(height)[:, None] / (2 * height)
    v = np.arange(width)[None, :] / (2 * width)
    return np.sqrt(u ** 2 + v ** 2)


def band_index(height: int, width: int, bands: int = 8) -> np.ndarray:
    """``(H, W)`` int: the band (0 .. ``bands - 1``) of every DCT coefficient, -1 for the DC term."""
    if bands < 1:
        raise ValueError(f"bands={bands}: must be at least 1")
    index = np.minimum((radial_frequency(height, width) / NYQUIST * bands).astype(int), bands - 1)
    index[0, 0] = -1
    return index


def band_edges(bands: int = 8) -> np.ndarray:
    """``(bands + 1,)`` band limits in cycles per pixel; the last band also takes everything above 0.5."""
    return np.linspace(0.0, NYQUIST, bands + 1)


def band_energy(image: np.ndarray, bands: int = 8) -> np.ndarray:
    """``(bands,)`` fraction of the AC energy (sum of squared DCT coefficients, DC excluded) in each band.

    Sums to 1 (all zeros for a flat image, which has no AC energy).
    """
    spectrum = dct_spectrum(image)
    index = band_index(*spectrum.shape, bands)
    ac = index >= 0
    energy = np.bincount(index[ac], weights=spectrum[ac] ** 2, minlength=bands)
    total = energy.sum()
    return energy / total if total > 0 else energy


def band_weights(photo: np.ndarray, cartoon: np.ndarray, output: np.ndarray, bands: int = 8) -> np.ndarray:
    """``(bands,)`` effective style weight of ``output`` in each band.

    The least-squares ``w_k`` with ``S(output) - S(photo) ~ w_k * (S(cartoon) - S(photo))`` over the
    coefficients of band ``k``. A frequency-blind blend gives the same ``w`` in every band; a filter
    that kept the cartoon's high frequencies and the photo's low ones would give 0 low and 1 high.
    NaN in a band where cartoon and photo do not differ.
    """
    s_photo = dct_spectrum(photo)
    full, got = dct_spectrum(cartoon) - s_photo, dct_spectrum(output) - s_photo
    index = band_index(*s_photo.shape, bands)
    ac = index >= 0
    num = np.bincount(index[ac], weights=(got * full)[ac], minlength=bands)
    den = np.bincount(index[ac], weights=(full * full)[ac], minlength=bands)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


def log_magnitude(spectrum: np.ndarray, max_side: int = 128) -> np.ndarray:
    """``log10(1 + |S|)`` averaged over blocks so neither side exceeds ``max_side`` (for a heatmap)."""
    step = max(1, -(-max(spectrum.shape) // max_side))  # ceil division
    h, w = (spectrum.shape[0] // step) * step, (spectrum.shape[1] // step) * step
    logged = np.log10(1 + np.abs(spectrum[:h, :w]))
    return logged.reshape(h // step, step, w // step, step).mean(axis=(1, 3))


@dataclass
class StyleSweep:
    """Outputs of one photo across style weights, and their spectra in numbers."""

    weights: np.ndarray           # (n,) the style weights, as given
    outputs: list[np.ndarray]     # n images (H, W, 3) uint8, what the package returned
    photo: np.ndarray             # (H, W, 3) uint8, the output at style_weight 0 (the resized photo)
    cartoon: np.ndarray           # (H, W, 3) uint8, the output at style_weight 1 (the network alone)
    band_energy: np.ndarray       # (n, bands) fraction of AC energy per band, see band_energy
    band_weight: np.ndarray       # (n, bands) effective weight per band, see band_weights
    blend_residual: np.ndarray    # (n,) RMS of S(output) - (w S(cartoon) + (1 - w) S(photo)), luma grey levels
    change_rms: np.ndarray        # (n,) RMS of S(output) - S(photo), luma grey levels: the size of the change
    high_share: np.ndarray        # (n,) fraction of AC energy in the upper half of the bands (f >= 0.25 cycles/px)


def style_sweep(cartoonizer, decoded, weights, resolution: int, bands: int = 8) -> StyleSweep:
    """Cartoonize ``decoded`` (a :class:`~cartoonkit.imageio.DecodedImage`) at each style weight.

    Runs the package's own :meth:`~cartoonkit.Cartoonizer.process` for 0 and 1 (the two ends every
    blend is compared with) and every other weight, at ``resolution`` (long side, pixels).
    """
    from ..config import CartoonConfig

    def run(weight: float) -> np.ndarray:
        result = cartoonizer.process(decoded, CartoonConfig(style_weight=float(weight), resolution=resolution))
        return result.rgb.permute(1, 2, 0).cpu().numpy()

    weights = np.asarray(weights, dtype=np.float64)
    photo, cartoon = run(0.0), run(1.0)
    outputs = [photo if w == 0 else cartoon if w == 1 else run(w) for w in weights]  # the ends run once
    s_photo, s_cartoon = dct_spectrum(photo), dct_spectrum(cartoon)
    residual, change = [], []
    for w, out in zip(weights, outputs, strict=True):
        s_out = dct_spectrum(out)
        residual.append(np.sqrt(np.mean((s_out - (w * s_cartoon + (1 - w) * s_photo)) ** 2)))
        change.append(np.sqrt(np.mean((s_out - s_photo) ** 2)))
    energy = np.stack([band_energy(out, bands) for out in outputs])
    return StyleSweep(weights=weights, outputs=outputs, photo=photo, cartoon=cartoon, band_energy=energy,
                      band_weight=np.stack([band_weights(photo, cartoon, out, bands) for out in outputs]),
                      blend_residual=np.array(residual), change_rms=np.array(change),
                      high_share=energy[:, bands // 2:].sum(axis=1))
