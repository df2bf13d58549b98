"""The optional adjustments around the network: denoise before it, resize back and beautify after it.

All off by default (see :class:`~cartoonkit.config.CartoonConfig`): ``upscale`` runs the network on a
larger copy of the photo and shrinks the result back to the output size, ``denoise`` blurs the photo
with a small Gaussian before the network, ``beautify`` blends in an edge-preserving bilateral filter of
the result. Images are ``uint8`` RGB tensors ``(3, H, W)`` on any device, as everywhere in the package.
Notebook 02 measures what each one does.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from .config import CartoonConfig
from .transforms import output_size, resize_to

# Parameters of the "beautify" pass as commonly used after this model (cv2.bilateralFilter(img, 9, 75, 75)).
BILATERAL_DIAMETER = 9
BILATERAL_SIGMA_COLOR = 75.0
BILATERAL_SIGMA_SPACE = 75.0


def denoise(photo: torch.Tensor, kernel: int) -> torch.Tensor:
    """OpenCV's ``GaussianBlur(photo, (kernel, kernel), 0)``: a separable ``kernel x kernel`` blur with the
    weights OpenCV uses for that size (its fixed tables for 3, 5 and 7: ``[1, 2, 1] / 4`` for 3), mirrored borders
    (``BORDER_REFLECT_101``), rounded back to ``uint8``. ``kernel`` 0 returns the photo unchanged."""
    if kernel == 0:
        return photo
    # These are the blurs the folklore measures, so take OpenCV's own weights, not the sigma formula.
    weights = torch.from_numpy(cv2.getGaussianKernel(kernel, 0).astype(np.float32).ravel()).to(photo.device)
    pad = kernel // 2
    x = F.pad(photo[None].float(), (pad, pad, pad, pad), mode="reflect")  # reflect == REFLECT_101
    channels = x.shape[1]
    x = F.conv2d(x, weights.view(1, 1, 1, -1).expand(channels, 1, 1, kernel), groups=channels)
    x = F.conv2d(x, weights.view(1, 1, -1, 1).expand(channels, 1, kernel, 1), groups=channels)
    return x[0].round_().clamp_(0, 255).to(torch.uint8)


def target_size(network_photo: torch.Tensor, config: CartoonConfig) -> tuple[int, int]:
    """``(H, W)`` of the output for a photo prepared at the network size: long side ``resolution``."""
    return output_size(network_photo.shape[-2], network_photo.shape[-1], config.resolution)


def beautify(rgb: torch.Tensor, strength: float) -> torch.Tensor:
    """``rgb + strength * (bilateral(rgb) - rgb)``, rounded; smooths flat regions and keeps edges.

    OpenCV's bilateral filter runs on the CPU; the result comes back on ``rgb``'s device.
    """
    if strength == 0:
        return rgb
    image = np.ascontiguousarray(rgb.detach().cpu().permute(1, 2, 0).numpy())
    smooth = cv2.bilateralFilter(image, BILATERAL_DIAMETER, BILATERAL_SIGMA_COLOR, BILATERAL_SIGMA_SPACE)
    mixed = image + strength * (smooth.astype(np.float32) - image)
    out = torch.from_numpy(np.clip(np.rint(mixed), 0, 255).astype(np.uint8)).permute(2, 0, 1)
    return out.to(rgb.device)


def finish(rgb: torch.Tensor, config: CartoonConfig) -> torch.Tensor:
    """The network-size result -> the output: resized to ``resolution`` if ``upscale`` enlarged it, then
    beautified. Identity with the default settings."""
    return beautify(resize_to(rgb, target_size(rgb, config)), config.beautify)
