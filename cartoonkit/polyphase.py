"""A stride-1 convolution with few output channels, rewritten on the 2x2 polyphase grid.

Why: oneDNN's int8 convolutions put output channels in the vector lanes (16 int32 accumulators per
AVX-512 register). The generator's last layer has 3 output channels, so 13 of every 16 lanes idle: at
512 px it took 24 ms of the int8 network's 121 ms on one Zen 4 core, for 4 % of its multiply-adds.

How: output pixel ``(2p + a, 2q + b)`` of a ``k x k`` convolution (``k`` odd, ``SAME`` padding) only
reads input pixels whose row and column phases ``(i, j)`` and half-resolution offsets follow from
``a``, ``b`` and the tap. Regrouping the input into its four phases (``4C`` channels at half size) and
the output into its four phases (``4O`` channels) turns it into one ``2 * ceil(k / 4) + 1``-square
convolution (5 for 7x7)
with ``4O`` outputs: 12 lanes of 16 for ``O = 3``, about twice the multiply-adds, half the time.

In int8 the result is bit for bit the direct convolution's: the phase kernel holds the same weights
(plus zeros, which change neither the per-channel scale nor the sum) and the regrouped input the same
values under the same per-tensor scale. In floating point only the order of the sum changes.

Channels are ordered ``(phase, channel)`` rather than ``pixel_unshuffle``'s ``(channel, phase)``, so that
on channels-last memory each phase is a contiguous run of the original channels and the regrouping fuses
into the quantization before it as a vectorised copy (``pixel_unshuffle``'s order made it a gather and
cost more than the convolution saved).
"""

from __future__ import annotations

import torch
from torch import nn


def polyphase_weight(weight: torch.Tensor) -> torch.Tensor:
    """``(O, C, k, k)`` kernel of a stride-1 ``SAME`` convolution -> ``(4 O, 4 C, m, m)`` on the phase grid.

    ``m = 2 * ceil(r / 2) + 1`` with ``r = k // 2`` (5 for 7x7, 3 for 3x3 and 5x5). Output channel
    ``(a * 2 + b) * O + o``, input channel ``(i * 2 + j) * C + c``.
    """
    out_channels, in_channels, k, k2 = weight.shape
    if k != k2 or k % 2 == 0:
        raise ValueError(f"polyphase_weight: needs an odd square kernel, got {k}x{k2}")
    radius = k // 2
    centre = -(-radius // 2)
    size = 2 * centre + 1
    phased = weight.new_zeros(2, 2, out_channels, 2, 2, in_channels, size, size)
    for a in range(2):
        for b in range(2):
            for dy in range(k):
                for dx in range(k):
                    u, v = a + dy - radius, b + dx - radius   # input offset from pixel (2p, 2q)
                    phased[a, b, :, u % 2, v % 2, :, u // 2 + centre, v // 2 + centre] = weight[:, :, dy, dx]
    return phased.reshape(4 * out_channels, 4 * in_channels, size, size)


def to_phases(x: torch.Tensor) -> torch.Tensor:
    """``(N, C, H, W)`` -> ``(N, 4 C, H / 2, W / 2)``, channel ``(i * 2 + j) * C + c`` = ``x[c, 2p + i, 2q + j]``."""
    n, c, h, w = x.shape
    nhwc = x.permute(0, 2, 3, 1).reshape(n, h // 2, 2, w // 2, 2, c).permute(0, 1, 3, 2, 4, 5)
    return nhwc.reshape(n, h // 2, w // 2, 4 * c).permute(0, 3, 1, 2)


def from_phases(y: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`to_phases`: ``(N, 4 O, H / 2, W / 2)`` -> ``(N, O, H, W)``."""
    n, c4, h2, w2 = y.shape
    o = c4 // 4
    return y.reshape(n, 2, 2, o, h2, w2).permute(0, 3, 4, 1, 5, 2).reshape(n, o, 2 * h2, 2 * w2)


class PolyphaseConv2d(nn.Module):
    """Computes ``conv(x)`` for a stride-1, odd-kernel, ``SAME``-padded ``conv`` on the 2x2 phase grid.

    ``H`` and ``W`` must be even (the generator's inputs are multiples of 4). The inner layer is a plain
    ``nn.Conv2d`` named ``conv``, so graph tools such as the int8 quantizer see a convolution.
    """

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        k = conv.kernel_size[0]
        if conv.stride != (1, 1) or conv.dilation != (1, 1) or conv.groups != 1 or conv.padding != (k // 2, k // 2):
            raise ValueError(f"PolyphaseConv2d: needs a stride-1, undilated, SAME-padded convolution, got {conv}")
        size = 2 * -(-(k // 2) // 2) + 1
        self.conv = nn.Conv2d(4 * conv.in_channels, 4 * conv.out_channels, size, padding=size // 2,
                              bias=conv.bias is not None, device=conv.weight.device, dtype=conv.weight.dtype)
        with torch.no_grad():
            self.conv.weight.copy_(polyphase_weight(conv.weight))
            if conv.bias is not None:
                self.conv.bias.copy_(conv.bias.repeat(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return from_phases(self.conv(to_phases(x)))
