"""Tensor transforms between a decoded photo and the network, as pure functions.

Images are ``uint8`` tensors ``(C, H, W)`` (or ``(N, C, H, W)``), RGB, on any device. The network
side is float ``(N, 3, H, W)`` BGR in ``[-1, 1]`` with ``H`` and ``W`` multiples of 4.
"""

from __future__ import annotations

import platform

import torch
import torch.nn.functional as F

from .options import SIZE_MULTIPLE


def output_size(height: int, width: int, long_side: int) -> tuple[int, int]:
    """``(H, W)`` with the long side equal to ``long_side`` and the aspect ratio kept (at least 1 px)."""
    scale = long_side / max(height, width)
    if height >= width:
        return long_side, max(1, round(width * scale))
    return max(1, round(height * scale)), long_side


def resize_long_side(image: torch.Tensor, long_side: int) -> torch.Tensor:
    """Resize so the long side is ``long_side``; antialiased bilinear, same dtype as given."""
    return resize_to(image, output_size(image.shape[-2], image.shape[-1], long_side))


def resize_to(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize ``(..., h, w)`` to exactly ``size`` = ``(H, W)``; antialiased bilinear, same dtype as given.

    The same computation as torchvision's ``transforms.v2.functional.resize`` (bilinear, antialias),
    written against ``F.interpolate`` so that the package does not import torchvision (over a second of
    start-up) for it; ``tests/test_transforms.py`` holds it to torchvision's bytes.
    """
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    if image.numel() == 0:
        return image.new_empty((*image.shape[:-2], *size))
    shape = image.shape
    channels, height, width = shape[-3:]
    x = image.reshape(-1, channels, height, width)
    strides = x.stride()
    if x.is_contiguous(memory_format=torch.channels_last) and x.shape[0] == 1 and x.numel() != strides[0]:
        # As torchvision does: restride a faked batch of one so interpolate keeps channels_last (pytorch#68430).
        x = x.as_strided((1, channels, height, width), (x.numel(), *strides[1:]))
    native = x.dtype in (torch.float32, torch.float64) or (x.dtype == torch.uint8 and _native_uint8_bilinear(x))
    y = F.interpolate(x if native else x.float(), size=list(size), mode="bilinear", align_corners=False,
                      antialias=True)
    if not native:
        if image.dtype in (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64):
            y = y.round_()
        y = y.to(image.dtype)
    return y.reshape(shape[:-3] + (channels, *size))


def _native_uint8_bilinear(x: torch.Tensor) -> bool:
    """Whether ``interpolate`` resizes this uint8 tensor itself (torchvision's rule: CPU with AVX2/AVX-512 or
    ARM; elsewhere, CUDA included, it goes through float32 and is rounded back)."""
    if x.device.type != "cpu":
        return False
    if torch.compiler.is_compiling():
        return True
    return torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512") or platform.machine() in ("aarch64", "arm64")


def pad_to_shape(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Pad ``(..., h, w)`` bottom and right to ``(..., height, width)`` by edge replication, any dtype.

    Only bottom/right padding, so cropping ``[..., :h, :w]`` afterwards removes it without any shift
    of the content. Replication (not zeros) keeps the border statistics of the guided filter.
    """
    h, w = image.shape[-2:]
    if (h, w) == (height, width):
        return image
    rows = torch.arange(height, device=image.device).clamp_(max=h - 1)
    cols = torch.arange(width, device=image.device).clamp_(max=w - 1)
    return image.index_select(-2, rows).index_select(-1, cols)


def pad_to_multiple(x: torch.Tensor, multiple: int = SIZE_MULTIPLE) -> torch.Tensor:
    """:func:`pad_to_shape` up to the next multiples of ``multiple`` in ``H`` and ``W``."""
    height, width = x.shape[-2:]
    return pad_to_shape(x, height + -height % multiple, width + -width % multiple)


def rgb_uint8_to_network(rgb: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``uint8`` RGB ``(N, 3, H, W)`` -> BGR in ``[-1, 1]``, as the original ``x / 127.5 - 1`` on ``cv2`` images."""
    return rgb.flip(-3).to(dtype) / 127.5 - 1.0


def network_to_rgb_float(bgr: torch.Tensor) -> torch.Tensor:
    """Network output (BGR, ``~[-1, 1]``) -> float RGB on the ``[0, 255]`` scale, not yet clipped."""
    return (bgr.float().flip(-3) + 1.0) * 127.5


def blend_to_uint8(photo: torch.Tensor, cartoon: torch.Tensor, style_weight: float) -> torch.Tensor:
    """``photo + w * (cartoon - photo)``, rounded and clipped to ``uint8``.

    ``photo`` is the ``uint8`` network input, ``cartoon`` the float ``[0, 255]`` output. Written as an
    offset from the photo so ``w = 0`` returns the photo's exact bytes. Rounding (not the original
    code's truncation) keeps the output unbiased.
    """
    photo_f = photo.float()
    mixed = photo_f + style_weight * (cartoon - photo_f) if style_weight != 1.0 else cartoon
    return mixed.round().clamp_(0, 255).to(torch.uint8)
