"""The image kinds users hand in and get back (path, bytes, numpy, PIL, tensor), and conversions.

Inside the package an image is a ``DecodedImage`` (``uint8`` RGB ``(3, H, W)`` plus optional alpha);
this module is the one boundary between that and the user's types.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from PIL import Image

from .config import CartoonConfig
from .errors import ConfigError, InvalidImageError
from .imageio import DecodedImage, ImageLimits, check_dimensions, decode_pil, read_image

OUTPUT_KINDS = ("numpy", "pil", "tensor", "bytes")


def kind_of(image: Any) -> str:
    """The kind of result a user expects for this input: a path gives numpy, bytes give bytes."""
    if isinstance(image, (str, os.PathLike, np.ndarray)):
        return "numpy"
    if isinstance(image, (bytes, bytearray, memoryview)):
        return "bytes"
    if isinstance(image, Image.Image):
        return "pil"
    if isinstance(image, torch.Tensor):
        return "tensor"
    raise InvalidImageError(f"<{type(image).__name__}>: unsupported image type; pass a path, bytes, a numpy "
                            "uint8 array, a PIL image or a uint8 tensor")


def check_output_kind(kind: str) -> str:
    if kind not in OUTPUT_KINDS:
        raise ConfigError(f"output={kind!r}: unknown, allowed {', '.join(OUTPUT_KINDS)}")
    return kind


def device_of(image: Any) -> torch.device:
    return image.device if isinstance(image, torch.Tensor) else torch.device("cpu")


def to_decoded(image: Any, limits: ImageLimits = ImageLimits(), device: torch.device | None = None) -> DecodedImage:
    """Any supported image kind as one :class:`DecodedImage`; a path to a plain JPEG is decoded on ``device`` if
    that is a CUDA device (nvJPEG, :func:`~cartoonkit.gpu_codecs.read_for_device`)."""
    kind_of(image)  # raises for unsupported types
    if isinstance(image, (str, os.PathLike)):
        if device is not None and device.type == "cuda":
            from .gpu_codecs import read_for_device

            return read_for_device(image, device, limits)
        return read_image(image, limits=limits)
    if isinstance(image, (bytes, bytearray, memoryview)):
        return read_image(bytes(image), name="<bytes>", limits=limits)
    if isinstance(image, Image.Image):
        return decode_pil(image, name=getattr(image, "filename", "") or "<PIL image>", limits=limits)
    if isinstance(image, np.ndarray):
        return _from_channels_last(torch.from_numpy(np.ascontiguousarray(image)), "<numpy array>", limits)
    return _from_channels_first(image, "<tensor>", limits)


def _from_channels_last(pixels: torch.Tensor, name: str, limits: ImageLimits) -> DecodedImage:
    if pixels.dim() == 2:
        pixels = pixels[..., None]
    if pixels.dim() != 3:
        raise InvalidImageError(f"{name}: expected shape (H, W), (H, W, 3) or (H, W, 4), got {tuple(pixels.shape)}")
    return _from_channels_first(pixels.permute(2, 0, 1), name, limits)


def _from_channels_first(pixels: torch.Tensor, name: str, limits: ImageLimits) -> DecodedImage:
    if pixels.dtype != torch.uint8:
        raise InvalidImageError(f"{name}: expected uint8 values 0-255, got {pixels.dtype}")
    if pixels.dim() != 3 or pixels.shape[0] not in (1, 3, 4):
        raise InvalidImageError(f"{name}: expected shape (C, H, W) with C in 1, 3, 4, got {tuple(pixels.shape)}")
    channels, height, width = pixels.shape
    check_dimensions((width, height), name, limits)
    rgb = pixels[:3] if channels >= 3 else pixels.expand(3, height, width)
    alpha = pixels[3:4] if channels == 4 else None
    return DecodedImage(rgb=rgb.contiguous(), alpha=alpha.contiguous() if alpha is not None else None,
                        name=name, format="array")


def from_result(result, kind: str, config: CartoonConfig, device: torch.device = torch.device("cpu")) -> Any:
    """Convert a ``CartoonResult`` into the requested kind (see :data:`OUTPUT_KINDS`)."""
    check_output_kind(kind)
    if kind == "bytes":
        return result.encode(config.format, config.quality)
    pixels = result.rgb if result.alpha is None else torch.cat([result.rgb, result.alpha.to(result.rgb.device)])
    if kind == "tensor":
        return pixels.to(device)
    array = pixels.permute(1, 2, 0).cpu().numpy()
    return array if kind == "numpy" else Image.fromarray(array)  # (H, W, 3) -> RGB, (H, W, 4) -> RGBA
