"""The White-box Cartoonization / DCT-Net UNet generator and its guided-filter head.

Pure tensor code, no I/O. Every operation reproduces the TensorFlow 1 graph the weights were
trained in (see ``shared/models/SOURCES.md``):

* convolutions use TensorFlow ``SAME`` padding, which is asymmetric for the stride-2 layers;
* up-sampling is TF1 ``resize_bilinear`` with ``align_corners=False, half_pixel_centers=False``;
* leaky ReLU with slope 0.2 follows every convolution but the residual blocks' second one and
  the last one;
* the input is **BGR** in ``[-1, 1]`` and so is the output.

Shapes: ``(N, 3, H, W)`` in, ``(N, 3, H, W)`` out; ``H`` and ``W`` must be multiples of 4 so
the two skip connections line up.
"""

from __future__ import annotations

import functools
import operator
import threading

import torch
import torch.nn.functional as F
from torch import nn

from .options import SIZE_MULTIPLE  # noqa: F401 (defined torch-free there; re-exported for the importers)

LEAKY_SLOPE = 0.2
GUIDED_FILTER_RADIUS = 1
GUIDED_FILTER_EPS = 5e-3


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow ``SAME`` padding along one axis, as ``(before, after)``.

    TF puts the odd pixel of padding *after*, so a stride-2 3x3 convolution on an even size pads
    ``(0, 1)``, unlike PyTorch's symmetric ``padding=1``.
    """
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def same_conv(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> nn.Conv2d:
    """A plain ``nn.Conv2d`` for a TensorFlow ``SAME`` convolution; run it with :func:`conv_same`.

    Stride-1 layers have odd kernels, so their padding is symmetric and handed to cuDNN/oneDNN
    directly; stride-2 layers get ``padding=0`` and :func:`conv_same` pads them. The layers stay
    plain ``nn.Conv2d`` (not a subclass holding the padding) so that graph tools such as the int8
    quantizer recognise them as convolutions.
    """
    symmetric = kernel_size // 2 if stride == 1 else 0
    return nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=symmetric)


def conv_same(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """Apply a :func:`same_conv` layer with TensorFlow ``SAME`` padding (asymmetric when strided)."""
    if conv.stride[0] != 1:
        kernel = conv.kernel_size[0]
        top, bottom = same_padding(x.shape[-2], kernel, conv.stride[0])
        left, right = same_padding(x.shape[-1], kernel, conv.stride[1])
        x = F.pad(x, (left, right, top, bottom))
    return conv(x)


def upsample2x_tf_legacy(x: torch.Tensor) -> torch.Tensor:
    """2x bilinear up-sampling with TF1 ``resize_bilinear`` legacy semantics.

    The legacy mapping samples the source at ``dst / 2``: output pixel ``2i`` is input pixel
    ``i`` and ``2i+1`` the mean of inputs ``i`` and ``i+1``, the last one repeated at the edge.
    PyTorch's ``interpolate`` uses half-pixel centres instead and visibly differs.

    Two formulations of the same values, one per way of running (measured at 512 px, 32 channels,
    bfloat16, one Zen 4 thread):

    * traced (``torch.compile``, ``torch.export``): a gather of two neighbours per axis,
      ``(x[j // 2] + x[(j + 1) // 2]) * 0.5``, exact for even ``j`` too since ``(a + a) * 0.5 == a``.
      Inductor fuses it and the skip sum after it into one vectorised pass: 1.8 ms, against 7.9 ms
      for the interleaving below, which it lowers to a scalar loop;
    * eager: interleaving with ``stack``, in the tensor's own memory order, so a channels-last
      activation stays channels-last for the next convolution (in NCHW order it came out NCHW and
      the convolution reordered it back). Index gathers are 3-4x slower than this in eager.
    """
    if torch.compiler.is_compiling():
        return _gather_along(_gather_along(x, x.dim() - 1), x.dim() - 2)
    if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        nhwc = x.permute(0, 2, 3, 1)
        return _interleave_along(_interleave_along(nhwc, 2), 1).permute(0, 3, 1, 2)
    # Width first, then height: TF interpolates the top and bottom rows along x, then blends them.
    return _interleave_along(_interleave_along(x, x.dim() - 1), x.dim() - 2)


def _interleave_along(t: torch.Tensor, dim: int) -> torch.Tensor:
    nxt = torch.cat([t.narrow(dim, 1, t.shape[dim] - 1), t.narrow(dim, t.shape[dim] - 1, 1)], dim)
    pair = torch.stack([t, (t + nxt) * 0.5], dim=dim + 1)
    return pair.flatten(dim, dim + 1)


def _gather_along(t: torch.Tensor, dim: int) -> torch.Tensor:
    size = t.shape[dim]
    target = torch.arange(2 * size, device=t.device)
    left, right = target // 2, ((target + 1) // 2).clamp(max=size - 1)
    return (t.index_select(dim, left) + t.index_select(dim, right)) * 0.5


def box_counts(height: int, width: int, radius: int, device: torch.device | str = "cpu",
               dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``(height, width)``: how many pixels of each ``(2r+1)^2`` window lie inside the image."""
    def along(n: int) -> torch.Tensor:
        index = torch.arange(n, device=device)
        return ((index + radius).clamp(max=n - 1) - (index - radius).clamp(min=0) + 1).to(dtype)

    return along(height)[:, None] * along(width)[None, :]


_BOX_COUNTS: dict[tuple, torch.Tensor] = {}
_BOX_COUNTS_KEPT = 8   # a folder's shape buckets; 4 MB each at 1024 px
_BOX_COUNTS_LOCK = threading.Lock()


def cached_box_counts(x: torch.Tensor, radius: int) -> torch.Tensor:
    """:func:`box_counts` for ``x``'s size, from a small cache (the counts are the same for every image of a
    size, and computing them took as long as a box sum)."""
    height, width = x.shape[-2:]
    if type(x) is not torch.Tensor:   # traced (export, ONNX): symbolic sizes, and no fake tensor may be kept
        return box_counts(height, width, radius, x.device, x.dtype)
    key = (height, width, radius, x.device, x.dtype)
    with _BOX_COUNTS_LOCK:
        counts = _BOX_COUNTS.get(key)
        if counts is None:
            with torch.inference_mode(False), torch.no_grad():
                counts = box_counts(height, width, radius, x.device, x.dtype)
            if len(_BOX_COUNTS) >= _BOX_COUNTS_KEPT:
                _BOX_COUNTS.pop(next(iter(_BOX_COUNTS)))
            _BOX_COUNTS[key] = counts
    return counts


def box_mean(x: torch.Tensor, radius: int, counts: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over a ``(2r+1)^2`` window, each border pixel divided by its count of in-bounds pixels.

    Separable shifted sums on a zero-padded copy: for the guided filter's few channels this is about
    twice as fast on the CPU as ``avg_pool2d(count_include_pad=False)``, which it equals. ``counts``:
    :func:`box_counts` for ``x``'s size (looked up when not given).
    """
    height, width = x.shape[-2:]
    k = 2 * radius + 1
    padded = F.pad(x, (radius, radius, radius, radius))
    # reduce, not sum(): sum() starts from 0 and spends a full pass adding it.
    rows = functools.reduce(operator.add, (padded[..., :, i:i + width] for i in range(k)))
    sums = functools.reduce(operator.add, (rows[..., i:i + height, :] for i in range(k)))
    return sums / (counts if counts is not None else cached_box_counts(x, radius))


def guided_filter(guide: torch.Tensor, src: torch.Tensor, radius: int, eps: float,
                  counts: torch.Tensor | None = None) -> torch.Tensor:
    """Per-channel guided filter (He et al.) as in White-box Cartoonization's ``guided_filter``.

    ``guide`` and ``src`` have the same shape ``(N, C, H, W)``; the result smooths ``src`` while
    keeping the edges of ``guide``. Each mean is its own :func:`box_mean` on contiguous NCHW memory,
    with the window counts looked up once: 3.4x faster in eager than concatenating the four means
    into one call, as this did before, with the same values (10.6 vs 36 ms at 512 px, one Zen 4 thread).
    ``counts``: :func:`box_counts` of the size, for a compiled graph (given as an input, not computed inside,
    where inductor would fold them into index arithmetic and stop vectorising).
    """
    guide, src = guide.contiguous(), src.contiguous()
    if counts is None:
        counts = cached_box_counts(guide, radius)
    mean_guide, mean_src = box_mean(guide, radius, counts), box_mean(src, radius, counts)
    mean_gs, mean_gg = box_mean(guide * src, radius, counts), box_mean(guide * guide, radius, counts)
    a = (mean_gs - mean_guide * mean_src) / (mean_gg - mean_guide * mean_guide + eps)
    b = mean_src - a * mean_guide
    return box_mean(a, radius, counts) * guide + box_mean(b, radius, counts)


def _leaky(x: torch.Tensor) -> torch.Tensor:
    # In place: every caller passes a fresh convolution output, and this saves one full-size buffer.
    return F.leaky_relu(x, LEAKY_SLOPE, inplace=True)


class ResBlock(nn.Module):
    """conv -> leaky ReLU -> conv, plus the input; no activation after the sum."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = same_conv(channels, channels, 3)
        self.conv2 = same_conv(channels, channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(_leaky(self.conv1(x)))
        out += x  # in place on the fresh convolution output
        return out


class UNetGenerator(nn.Module):
    """The ``unet_generator`` of White-box Cartoonization (32 base channels, 4 residual blocks).

    Attribute names follow the TensorFlow scopes (``conv0`` is ``generator/Conv``, ``conv1`` is
    ``generator/Conv_1`` ... ``blocks.0.conv1`` is ``generator/block_0/conv1``), so the weight
    importers map names one to one through :data:`TF_LAYER_SCOPES`.
    """

    def __init__(self, channels: int = 32, num_blocks: int = 4):
        super().__init__()
        c = channels
        self.conv0 = same_conv(3, c, 7)
        self.conv1 = same_conv(c, c, 3, stride=2)
        self.conv2 = same_conv(c, 2 * c, 3)
        self.conv3 = same_conv(2 * c, 2 * c, 3, stride=2)
        self.conv4 = same_conv(2 * c, 4 * c, 3)
        self.blocks = nn.Sequential(*[ResBlock(4 * c) for _ in range(num_blocks)])
        self.conv5 = same_conv(4 * c, 2 * c, 3)
        self.conv6 = same_conv(2 * c, 2 * c, 3)
        self.conv7 = same_conv(2 * c, c, 3)
        self.conv8 = same_conv(c, c, 3)
        self.conv9 = same_conv(c, 3, 7)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x0 = _leaky(self.conv0(x))
        x1 = _leaky(self.conv2(_leaky(conv_same(self.conv1, x0))))
        x2 = _leaky(self.conv4(_leaky(conv_same(self.conv3, x1))))
        x2 = _leaky(self.conv5(self.blocks(x2)))
        x3 = _leaky(self.conv6(upsample2x_tf_legacy(x2) + x1))
        x3 = _leaky(self.conv7(x3))
        x4 = _leaky(self.conv8(upsample2x_tf_legacy(x3) + x0))
        return self.conv9(x4)


class CartoonNetwork(nn.Module):
    """Generator plus the guided-filter head: BGR photo in ``[-1, 1]`` -> BGR cartoon in ``~[-1, 1]``."""

    def __init__(self, channels: int = 32, num_blocks: int = 4,
                 radius: int = GUIDED_FILTER_RADIUS, eps: float = GUIDED_FILTER_EPS):
        super().__init__()
        self.generator = UNetGenerator(channels, num_blocks)
        self.radius = radius
        self.eps = eps
        self.head = guided_filter  # see filter_eagerly_when_compiled

    def filter_eagerly_when_compiled(self) -> None:
        """Run the guided filter eagerly, as a graph break, when this network is ``torch.compile``-d (the CUDA
        engines). Traced inside the network, on channels-last inputs with the counts computed in the graph,
        inductor looped over the 3 channels innermost and ran scalar (12-80 ms at 512 px on one Zen 4 thread,
        against 10.6 ms eager). The CPU's compiled engines compile it apart instead, on NCHW inputs with the
        counts as an input (packaged.FilterPackages), which beats the eager filter; torch.export (ONNX, OpenVINO)
        traces through it as usual. Set by the engine that compiles, not at import: ``torch.compiler.disable``
        imports dynamo (seconds of start-up) that an eager run never needs."""
        self.head = torch.compiler.disable(guided_filter)

    def forward(self, photo_bgr: torch.Tensor) -> torch.Tensor:
        check_input_shape(photo_bgr)
        # The generator may run in reduced precision (the engine casts it); the guided filter stays
        # in float32 because its ``var + eps`` cancels catastrophically in 16-bit formats.
        styled = self.generator(photo_bgr.to(self.generator.conv0.weight.dtype)).float()
        return self.head(photo_bgr.float(), styled, self.radius, self.eps)


def check_input_shape(x: torch.Tensor) -> None:
    """Fail early with a readable message instead of a shape error deep inside the UNet."""
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"expected a (N, 3, H, W) tensor, got shape {tuple(x.shape)}")
    h, w = x.shape[-2:]
    if h % SIZE_MULTIPLE or w % SIZE_MULTIPLE:
        raise ValueError(f"height and width must be multiples of {SIZE_MULTIPLE}, got {h}x{w}")


# TensorFlow layer scope -> parameter prefix in ``CartoonNetwork.state_dict()``.
TF_LAYER_SCOPES: dict[str, str] = {
    **{("Conv" if i == 0 else f"Conv_{i}"): f"generator.conv{i}" for i in range(10)},
    **{f"block_{b}/conv{j}": f"generator.blocks.{b}.conv{j}" for b in range(4) for j in (1, 2)},
}


def expected_shapes(channels: int = 32, num_blocks: int = 4) -> dict[str, tuple[int, ...]]:
    """Every parameter's shape in PyTorch layout, used by importers to check a file before loading."""
    return {k: tuple(v.shape) for k, v in CartoonNetwork(channels, num_blocks).state_dict().items()}
