"""The network's first and last 7x7 convolutions widened from 3 to 8 channels with zeros, for tensor cores.

Why: the first convolution reads 3 channels (RGB) and the last writes 3. cuDNN's float16 tensor-core kernels want
channel counts in multiples of 8; with 3 it falls back to slower implicit-GEMM kernels (profiled on an H200: the
first convolution alone was 6.7 ms of a 49 ms batch of 16 at 1024 px, issue 23). Widened, the first convolution
reads the photo plus 5 channels of zeros through 5 input channels of zero weights, and the last writes 5 extra
channels of zero weights and zero bias that are sliced off. The zeros add nothing, so the result is the same
network's (in float32 equal up to the order of the sums; ``tests/test_network.py``).

Step 1 of issue 23, behind ``EngineOptions(pad_edge_channels=True)`` (``--pad-edge-channels``); kept off by default
until a GPU measurement shows that it pays (BENCHMARKS.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

TENSOR_CORE_CHANNELS = 8
"""float16/bfloat16 tensor-core convolutions want channel counts that are multiples of 8."""


class WidenedInputConv(nn.Conv2d):
    """A convolution over ``TENSOR_CORE_CHANNELS`` input channels that takes fewer and pads the rest with zeros."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        missing = self.in_channels - x.shape[1]
        if missing:
            x = F.pad(x, (0, 0, 0, 0, 0, missing))  # zero channels, in x's own memory format
        return super().forward(x)


class NarrowedOutputConv(nn.Conv2d):
    """A convolution computed over ``TENSOR_CORE_CHANNELS`` output channels, of which the first ``keep`` are kept."""

    def __init__(self, *args, keep: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.keep = keep

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x)[:, :self.keep]


def _copy_into(new: nn.Conv2d, old: nn.Conv2d) -> nn.Conv2d:
    with torch.no_grad():
        new.weight.zero_()
        new.weight[:old.out_channels, :old.in_channels].copy_(old.weight)
        new.bias.zero_()
        new.bias[:old.out_channels].copy_(old.bias)
    return new.to(device=old.weight.device, dtype=old.weight.dtype)


def widen_input(conv: nn.Conv2d, channels: int = TENSOR_CORE_CHANNELS) -> WidenedInputConv:
    """``conv`` reading ``channels`` input channels, the new ones with zero weights (same padding and stride)."""
    wide = WidenedInputConv(channels, conv.out_channels, conv.kernel_size, stride=conv.stride, padding=conv.padding)
    return _copy_into(wide, conv)


def narrow_output(conv: nn.Conv2d, channels: int = TENSOR_CORE_CHANNELS) -> NarrowedOutputConv:
    """``conv`` computing ``channels`` output channels (the new ones zero) and returning its own."""
    wide = NarrowedOutputConv(conv.in_channels, channels, conv.kernel_size, stride=conv.stride, padding=conv.padding,
                              keep=conv.out_channels)
    return _copy_into(wide, conv)


def pad_edge_channels(generator: nn.Module) -> nn.Module:
    """The UNet generator with its first convolution widened on the input and its last on the output (in place;
    returns it). Its state dict then no longer matches the weight files: apply this to a loaded network only."""
    if generator.conv0.in_channels < TENSOR_CORE_CHANNELS:
        generator.conv0 = widen_input(generator.conv0)
    if generator.conv9.out_channels < TENSOR_CORE_CHANNELS:
        generator.conv9 = narrow_output(generator.conv9)
    return generator
