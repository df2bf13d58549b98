"""The residual blocks' 128 -> 128 3x3 convolutions in float8 (E4M3) through ``torch._scaled_mm``.

Why: those 8 convolutions carry 59 % of the generator's arithmetic (issue 23), and Hopper's (and Ada's, compute
capability >= 8.9) float8 tensor cores run twice the float16 rate. Everything else stays in the engine's reduced
precision (float16 on CUDA).

How, per convolution (:func:`float8_conv3x3`):

* weights quantized once, **per tensor**: ``_scaled_mm``'s row-wise scaling (a scale per output channel) runs on the
  CPU but on CUDA (torch 2.11, SM90) only with a bfloat16 output, and this network's reduced precision on CUDA is
  float16; per-tensor scales run everywhere with any output dtype and a fused bias;
* activations per tensor, with a scale computed on the device from their absolute maximum: no ``.item()``, no host
  synchronisation (so it also runs inside CUDA graphs and ``torch.compile``);
* both scales are rounded up to powers of two, so scaling is exact and the float8 values of a photo do not depend on
  the scale beyond the range limits: a photo's result stays (up to the rare subnormal) independent of its batch
  companions, as the engine promises, although the activation scale is the batch's;
* the convolution as an implicit GEMM by im2col, in channels-last order: the float8 input is padded once and its 9
  shifted windows concatenated along the channels into an ``(N*H*W, 9*128)`` matrix, one byte per value, then one
  ``_scaled_mm`` with K = 1152 and the bias fused. Chosen over 9 shifted 1x1 GEMMs, which need no copy but write and
  re-read 9 partial outputs (float32 to accumulate without loss: 4 bytes per value each time) and take 9 launches;
  im2col costs 9 bytes per input value once (about 75 MB per 1024-px image at the residual stage's 256 x 256 x 128),
  and it is one GEMM, the simpler code. (``F.unfold`` would give the transposed, channels-first layout and does not
  take float8, so it would need a float16 copy 18 bytes per value and a transpose.)

Output in the input's dtype (float16 on CUDA), channels-last. Behind ``EngineOptions(precision="float8")``
(``--precision float8``), CUDA with compute capability >= 8.9 only; ``auto`` never picks it (not measured on a GPU
against the 44 dB bar). Accuracy on the CPU, where ``_scaled_mm`` also runs (``tests/test_float8.py``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .errors import ConfigError

FLOAT8 = torch.float8_e4m3fn
FLOAT8_MAX = 448.0
"""The largest finite E4M3 (``fn``: no infinities) value."""
MIN_CAPABILITY = (8, 9)
"""float8 tensor cores: Ada (8.9) and Hopper (9.0) and later."""
# The smallest scale: keeps log2 finite for an all-zero tensor, and 1 / scale finite in float16 (2^14 < 65504), so
# that quantize never computes 0 * inf. Values below 2^-23 then flush to zero: nothing this network needs.
_SMALLEST_SCALE = 2.0 ** -14


def check_float8_device(device: torch.device) -> None:
    """A ConfigError unless ``device`` is a CUDA device with float8 tensor cores (compute capability >= 8.9)."""
    if device.type != "cuda":
        raise ConfigError(f"precision='float8': needs a CUDA GPU with float8 tensor cores (compute capability >= 8.9, "
                          f"Ada or Hopper); the engine is on {device}")
    major, minor = torch.cuda.get_device_capability(device)
    if (major, minor) < MIN_CAPABILITY:
        raise ConfigError(f"precision='float8': needs compute capability >= 8.9 (Ada, Hopper: float8 tensor cores); "
                          f"{device} has {major}.{minor}; use auto or float16")


def power_of_two_scale(amax: torch.Tensor) -> torch.Tensor:
    """The float32 scale, a power of two, that maps ``[-amax, amax]`` into E4M3's ``[-448, 448]`` (a tensor: computed
    on ``amax``'s device, never read by the host)."""
    ratio = amax.float() / FLOAT8_MAX
    return torch.exp2(torch.ceil(torch.log2(ratio.clamp(min=_SMALLEST_SCALE))))


def quantize(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``x / scale`` in float8 E4M3, saturated at +-448 (a cast alone would give NaN beyond it)."""
    return (x * (1.0 / scale).to(x.dtype)).clamp(-FLOAT8_MAX, FLOAT8_MAX).to(FLOAT8)


def quantize_weight(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A ``(O, C, kh, kw)`` convolution weight as the GEMM's ``(O, kh*kw*C)`` float8 matrix (rows in the im2col
    order: kernel row, kernel column, channel) and its per-tensor scale."""
    matrix = weight.detach().float().permute(0, 2, 3, 1).reshape(weight.shape[0], -1)
    scale = power_of_two_scale(matrix.abs().amax())
    return quantize(matrix, scale), scale


def im2col3x3(q: torch.Tensor) -> torch.Tensor:
    """``(N, H, W, C)`` float8 -> the ``(N*H*W, 9*C)`` matrix of its 3x3 windows (zero padding, stride 1)."""
    n, h, w, c = q.shape
    padded = F.pad(q.view(torch.uint8), (0, 0, 1, 1, 1, 1))  # the byte 0 is +0.0 in E4M3; pad works on bytes
    windows = [padded[:, dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3)]
    return torch.cat(windows, dim=3).view(FLOAT8).reshape(n * h * w, 9 * c)


def float8_conv3x3(x: torch.Tensor, weight_q: torch.Tensor, weight_scale: torch.Tensor,
                   bias: torch.Tensor | None) -> torch.Tensor:
    """A stride-1, ``padding=1`` 3x3 convolution of ``x`` ``(N, C, H, W)`` with a :func:`quantize_weight` weight,
    as one float8 GEMM. The result is ``(N, O, H, W)`` in ``x``'s dtype, channels-last in memory."""
    n, c, h, w = x.shape
    nhwc = x.permute(0, 2, 3, 1)  # a view; a copy only when x is not channels-last already
    x_scale = power_of_two_scale(x.abs().amax())
    cols = im2col3x3(quantize(nhwc, x_scale).contiguous())
    fused_bias = bias is not None and x.dtype in (torch.float16, torch.bfloat16)  # _scaled_mm's bias dtypes
    out = torch._scaled_mm(cols, weight_q.t(), scale_a=x_scale, scale_b=weight_scale,
                           bias=bias.to(x.dtype) if fused_bias else None, out_dtype=x.dtype)
    if bias is not None and not fused_bias:
        out = out + bias.to(x.dtype)
    return out.view(n, h, w, -1).permute(0, 3, 1, 2)


class Float8Conv2d(nn.Module):
    """A :func:`~cartoonkit.network.same_conv` 3x3 stride-1 layer run by :func:`float8_conv3x3`.

    The float8 weight is kept as its bytes (``uint8``) and the bias as a parameter, so that the engine's
    ``generator.to(float16)`` casts the bias and leaves the quantized weight alone (``Module.to`` casts every
    floating-point tensor, float8 included). ``weight_scale`` stays float32 unless cast with the rest (then a power of
    two in float16, the same value).
    """

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        if conv.kernel_size != (3, 3) or conv.stride != (1, 1) or conv.padding != (1, 1) or conv.groups != 1:
            raise ValueError(f"Float8Conv2d: a stride-1 3x3 convolution with padding 1, got {conv}")
        self.in_channels, self.out_channels = conv.in_channels, conv.out_channels
        weight_q, scale = quantize_weight(conv.weight)
        self.register_buffer("weight_bytes", weight_q.view(torch.uint8))
        self.register_buffer("weight_scale", scale)
        self.bias = None if conv.bias is None else nn.Parameter(conv.bias.detach().clone(), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return float8_conv3x3(x, self.weight_bytes.view(FLOAT8), self.weight_scale.float(), self.bias)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, kernel_size=(3, 3), float8 E4M3"


def use_float8_blocks(generator: nn.Module) -> nn.Module:
    """The UNet generator with its residual blocks' convolutions replaced by :class:`Float8Conv2d` (in place; returns
    it). Apply to a copy of a loaded network: its state dict no longer matches the weight files."""
    for block in generator.blocks:
        block.conv1 = Float8Conv2d(block.conv1)
        block.conv2 = Float8Conv2d(block.conv2)
    return generator
