"""The images the benchmark feeds the network, and how it compares their outputs."""

from __future__ import annotations

import numpy as np
import torch

from ..transforms import resize_long_side


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of two images on the [0, 255] scale, after clipping (what would be saved)."""
    mse = ((a.float().clamp(0, 255) - b.float().clamp(0, 255)) ** 2).mean().item()
    return float("inf") if mse == 0 else float(10 * np.log10(255.0 ** 2 / mse))


def square_photo(photo: torch.Tensor, size: int) -> torch.Tensor:
    """A real photo centre-cropped to a square and resized to ``size x size``."""
    h, w = photo.shape[-2:]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return resize_long_side(photo[:, top:top + side, left:left + side].contiguous(), size)
