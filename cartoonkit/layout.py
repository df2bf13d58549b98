"""Pixel layout on the host: ``(H, W, C)`` arrays (what Pillow, OpenCV and PyAV hand over) to and from the
``(C, H, W)`` tensors the rest of cartoonkit works with, at memory speed.

Why not ``tensor.permute(...).contiguous()``: for ``uint8`` pixels torch copies element by element, which
on a 2-core host costs more than decoding a small JPEG (BENCHMARKS.md, host cost per file: 0.15-0.47 ms
against 0.01 ms for a 256-px photo). OpenCV's ``split`` and ``merge`` are vectorised copies that release the
GIL, so reader and writer threads run them side by side. The bytes are the same; ``tests/test_layout.py``
holds both functions to torch's ``permute``.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

__all__ = ["chw_to_hwc", "hwc_to_chw"]

# OpenCV's split and merge take at most this many channels (CV_CN_MAX); more go through numpy.
_OPENCV_CHANNELS = 4


def hwc_to_chw(array: np.ndarray) -> torch.Tensor:
    """``(H, W, C)`` array (any strides) -> a new contiguous CPU tensor ``(C, H, W)`` of the same dtype; equal
    to ``torch.from_numpy(array).permute(2, 0, 1).contiguous()``."""
    if array.ndim != 3:
        raise ValueError(f"hwc_to_chw needs an (H, W, C) array, got shape {array.shape}")
    height, width, channels = array.shape
    planes = np.empty((channels, height, width), dtype=array.dtype)
    if channels == 1:
        planes[0] = array[:, :, 0]
    elif array.size and channels <= _OPENCV_CHANNELS and array.dtype == np.uint8:
        cv2.split(array, list(planes))  # writes into ``planes``: one pass, no temporary
    else:
        planes[...] = array.transpose(2, 0, 1)
    return torch.from_numpy(planes)


def chw_to_hwc(*tensors: torch.Tensor) -> np.ndarray:
    """The channels of one or more ``(C, H, W)`` tensors of one height and width (e.g. rgb and alpha), stacked
    as a new contiguous ``(H, W, C_total)`` array on the host; equal to
    ``torch.cat(tensors).permute(1, 2, 0).contiguous().numpy()``. Each tensor may live on any device."""
    planes = [plane for tensor in tensors for plane in tensor.detach().to("cpu").numpy()]
    if not planes:
        raise ValueError("chw_to_hwc needs at least one channel")
    height, width = planes[0].shape
    if len(planes) == 1:
        return planes[0].reshape(height, width, 1).copy()
    if planes[0].size and len(planes) <= _OPENCV_CHANNELS and all(p.dtype == np.uint8 for p in planes):
        return cv2.merge(planes)
    return np.ascontiguousarray(np.stack(planes, axis=-1))
