"""PSNR and SSIM between two ``(H, W, 3)`` uint8 images, and the comparison at a common size.

Both metrics compare pixel for pixel, so the two images must have one shape; :func:`compare_at`
resizes two images of different resolutions to one shape first (the resolution study).
"""

from __future__ import annotations

import numpy as np
import torch

from .. import transforms
from ..transforms import output_size

PEAK = 255.0  # uint8 images


def _check_pair(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(f"images of different shapes: {a.shape} and {b.shape}")
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"expected (H, W, 3) images, got {a.shape}")


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB, ``10 log10(255^2 / MSE)``, the MSE over all pixels and channels.

    ``inf`` for identical images. ``a`` and ``b``: ``(H, W, 3)`` uint8 of one shape.
    """
    _check_pair(a, b)
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else float(10 * np.log10(PEAK ** 2 / mse))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Structural similarity (Wang et al. 2004), the mean over the R, G and B channels.

    Gaussian window of 11 x 11 pixels (sigma 1.5), population (not sample) covariances,
    ``K1 = 0.01``, ``K2 = 0.03``, data range 255; the mean is over the pixels whose whole window
    lies inside the image. 1.0 for identical images. ``a`` and ``b``: ``(H, W, 3)`` uint8, at
    least 11 x 11.
    """
    from skimage.metrics import structural_similarity

    _check_pair(a, b)
    return float(structural_similarity(a, b, data_range=PEAK, channel_axis=2, gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False, K1=0.01, K2=0.03))


def resize_to(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """``(H, W, 3)`` uint8 -> ``(height, width, 3)`` uint8, antialiased bilinear (the package's resize)."""
    if image.shape[:2] == (height, width):
        return image
    tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
    return transforms.resize_to(tensor, (height, width)).permute(1, 2, 0).contiguous().numpy()


def compare_at(image: np.ndarray, reference: np.ndarray, long_side: int) -> dict[str, float]:
    """PSNR (dB) and SSIM of ``image`` against ``reference`` once both are resized to one common size.

    The common size has ``reference``'s aspect ratio and a long side of ``long_side`` pixels, so an
    output made at 512 and one made at 2048 are judged on the same pixel grid. Returns
    ``{"psnr": ..., "ssim": ..., "height": ..., "width": ...}``.
    """
    height, width = output_size(reference.shape[0], reference.shape[1], long_side)
    a, b = resize_to(image, height, width), resize_to(reference, height, width)
    return {"psnr": psnr(a, b), "ssim": ssim(a, b), "height": height, "width": width}
