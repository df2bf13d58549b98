"""Hand-written Triton kernels for the element-wise gaps of the eager generator on CUDA (issue 23, step 2).

Why: profiled on an H200 (eager float16, batch 16 at 1024 px), the 18 convolutions were 37 % of the GPU time and
the element-wise work between them about 60 %. Eager PyTorch runs each gap as several kernels, each a full pass
over memory: cuDNN writes the convolution, the bias is added in a second kernel and the leaky ReLU applied in a
third; the residual blocks add their input in a third; the TF1 up-sampling before each skip connection is about
eight kernels (``cat``, add, multiply, ``stack``, per axis) and the skip add one more. Here each gap is one kernel:

* :func:`bias_act`: bias + leaky ReLU after the 13 activated convolutions (run without their bias), or bias +
  the residual input after the blocks' second convolutions: one pass instead of two or three;
* :func:`upsample2x_add`: the previous convolution's bias + leaky ReLU, TF1 legacy 2x bilinear up-sampling and
  the skip add, read from the half-size activation: one pass instead of about ten, and no full-size
  intermediate at all;
* :func:`guided_filter`: the float32 guided-filter head (about 20 eager kernels: four box means, each a pad, shifted
  sums and a division, the ``a``/``b`` formulas, two more box means, the blend) as two: the four window means with
  ``a`` and ``b``, then the means of ``a`` and ``b`` with the blend. The window counts are computed in the kernel.

The kernels round to the tensor's dtype after every step the eager code rounds after, in the same order, so for
float16 and float32 they give the eager network's values bit for bit (the guided filter is tested within 1e-5 of
eager instead, since eager's CUDA kernels may round otherwise) (given the same convolution outputs;
``tests/test_fused.py`` checks that under Triton's interpreter). Both memory layouts are handled: NCHW and
channels-last, each dense (anything else is made dense first); the output has the layout of its input.

:class:`FusedUNetGenerator` is the generator whose ``forward`` uses them. The engine switches to it with
``EngineOptions(fused_kernels=True)`` (``--fused-kernels``): CUDA and eager only, off by default until a GPU
measurement shows that it pays. On the CPU the kernels run only under the interpreter (``TRITON_INTERPRET=1``,
which must be set before triton is imported), the way the tests run them; the engine refuses the flag otherwise.
"""

from __future__ import annotations

import contextlib
import os

import torch
import triton
import triton.language as tl
from torch import nn

from .network import LEAKY_SLOPE, CartoonNetwork, UNetGenerator, same_padding
from .network import guided_filter as network_guided_filter


def interpreting() -> bool:
    """Whether Triton's interpreter is on (``TRITON_INTERPRET=1``): the kernels then run on CPU tensors, slowly."""
    return os.environ.get("TRITON_INTERPRET", "0").strip().lower() in ("1", "true", "yes", "on")


INTERPRETED = interpreting()
"""Whether this module's kernels were built for the interpreter: triton decides when ``@triton.jit`` runs, at import."""
BLOCK = 8192 if INTERPRETED else 1024
"""Elements per Triton program: on a GPU 4 warps of 32 threads, 8 elements each; interpreted, fewer, larger
programs (each costs a round of numpy calls)."""


def _check_device(x: torch.Tensor) -> None:
    if x.device.type == "cpu" and not INTERPRETED:
        raise RuntimeError("cartoonkit.fused: CPU tensors need Triton's interpreter, and TRITON_INTERPRET=1 was not "
                           "set when this module was imported")


@triton.jit
def _rounded(x, dtype: tl.constexpr):
    """``x`` (float32) rounded to the storage ``dtype`` and back, as eager rounds after each operation."""
    return x.to(dtype).to(tl.float32)


@triton.jit
def _bias_act_kernel(y_ptr, bias_ptr, residual_ptr, out_ptr, total, channels, plane,
                     CHANNELS_LAST: tl.constexpr, LEAKY: tl.constexpr, RESIDUAL: tl.constexpr,
                     SLOPE: tl.constexpr, BLOCK: tl.constexpr):
    offsets = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < total
    if CHANNELS_LAST:
        channel = offsets % channels
    else:
        channel = (offsets // plane) % channels
    dtype = out_ptr.dtype.element_ty
    value = _rounded(tl.load(y_ptr + offsets, mask=mask).to(tl.float32)
                     + tl.load(bias_ptr + channel, mask=mask).to(tl.float32), dtype)
    if LEAKY:
        value = tl.where(value > 0, value, _rounded(value * SLOPE, dtype))
    if RESIDUAL:
        value = value + tl.load(residual_ptr + offsets, mask=mask).to(tl.float32)
    tl.store(out_ptr + offsets, value.to(dtype), mask=mask)


@triton.jit
def _activated(low_ptr, offset, bias, mask, dtype: tl.constexpr, BIAS: tl.constexpr, LEAKY: tl.constexpr,
               SLOPE: tl.constexpr):
    value = tl.load(low_ptr + offset, mask=mask).to(tl.float32)
    if BIAS:
        value = _rounded(value + bias, dtype)
    if LEAKY:
        value = tl.where(value > 0, value, _rounded(value * SLOPE, dtype))
    return value


@triton.jit
def _upsample2x_add_kernel(low_ptr, bias_ptr, skip_ptr, out_ptr, total, channels, height, width,
                           CHANNELS_LAST: tl.constexpr, BIAS: tl.constexpr, LEAKY: tl.constexpr,
                           SLOPE: tl.constexpr, BLOCK: tl.constexpr):
    offsets = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < total
    n, channel, y, x = _coordinates(offsets, channels, 2 * height, 2 * width, CHANNELS_LAST)
    # TF1 legacy resize_bilinear: output 2i is input i, 2i+1 the mean of inputs i and i+1 (the last one repeated).
    left, top = x // 2, y // 2
    right, bottom = tl.minimum(left + 1, width - 1), tl.minimum(top + 1, height - 1)
    if CHANNELS_LAST:
        row0 = (n * height + top) * width
        row1 = (n * height + bottom) * width
        i00, i01 = (row0 + left) * channels + channel, (row0 + right) * channels + channel
        i10, i11 = (row1 + left) * channels + channel, (row1 + right) * channels + channel
    else:
        plane0 = (n * channels + channel) * height
        i00, i01 = (plane0 + top) * width + left, (plane0 + top) * width + right
        i10, i11 = (plane0 + bottom) * width + left, (plane0 + bottom) * width + right
    dtype = out_ptr.dtype.element_ty
    bias = tl.load(bias_ptr + channel, mask=mask).to(tl.float32)  # zeros when there is none (and BIAS is off)
    v00 = _activated(low_ptr, i00, bias, mask, dtype, BIAS, LEAKY, SLOPE)
    v01 = _activated(low_ptr, i01, bias, mask, dtype, BIAS, LEAKY, SLOPE)
    v10 = _activated(low_ptr, i10, bias, mask, dtype, BIAS, LEAKY, SLOPE)
    v11 = _activated(low_ptr, i11, bias, mask, dtype, BIAS, LEAKY, SLOPE)
    # Width first, then height, each rounded as eager's (t + next) * 0.5 is.
    odd_x, odd_y = (x % 2) == 1, (y % 2) == 1
    upper = tl.where(odd_x, _rounded(_rounded(v00 + v01, dtype) * 0.5, dtype), v00)
    lower = tl.where(odd_x, _rounded(_rounded(v10 + v11, dtype) * 0.5, dtype), v10)
    value = tl.where(odd_y, _rounded(_rounded(upper + lower, dtype) * 0.5, dtype), upper)
    value = value + tl.load(skip_ptr + offsets, mask=mask).to(tl.float32)
    tl.store(out_ptr + offsets, value.to(dtype), mask=mask)


@triton.jit
def _coordinates(offsets, channels, height, width, CHANNELS_LAST: tl.constexpr):
    """``(n, c, y, x)`` of the flat ``offsets`` of a dense NCHW (or channels-last) tensor."""
    if CHANNELS_LAST:
        channel = offsets % channels
        rest = offsets // channels
        x = rest % width
        rest = rest // width
        y = rest % height
        n = rest // height
    else:
        x = offsets % width
        rest = offsets // width
        y = rest % height
        rest = rest // height
        channel = rest % channels
        n = rest // channels
    return n, channel, y, x


@triton.jit
def _window_count(y, x, height, width, RADIUS: tl.constexpr):
    """How many pixels of the ``(2r+1)^2`` window around ``(y, x)`` lie inside the image, as float32."""
    rows = tl.minimum(y + RADIUS, height - 1) - tl.maximum(y - RADIUS, 0) + 1
    columns = tl.minimum(x + RADIUS, width - 1) - tl.maximum(x - RADIUS, 0) + 1
    return rows.to(tl.float32) * columns.to(tl.float32)


@triton.jit
def _guided_ab_kernel(guide_ptr, src_ptr, a_ptr, b_ptr, total, channels, height, width,
                      guide_n, guide_c, guide_h, guide_w, src_n, src_c, src_h, src_w, eps,
                      CHANNELS_LAST: tl.constexpr, RADIUS: tl.constexpr, BLOCK: tl.constexpr):
    """The guided filter's first pass: the window means of guide, src, guide * src and guide * guide (summed row by
    row, each row left to right, as :func:`~cartoonkit.network.box_mean` does), then ``a`` and ``b``."""
    offsets = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < total
    n, channel, y, x = _coordinates(offsets, channels, height, width, CHANNELS_LAST)
    guide_base = n * guide_n + channel * guide_c
    src_base = n * src_n + channel * src_c
    sum_g = tl.full([BLOCK], 0.0, tl.float32)
    sum_s = tl.full([BLOCK], 0.0, tl.float32)
    sum_gs = tl.full([BLOCK], 0.0, tl.float32)
    sum_gg = tl.full([BLOCK], 0.0, tl.float32)
    for dy in tl.static_range(2 * RADIUS + 1):
        row = y + (dy - RADIUS)
        row_inside = mask & (row >= 0) & (row < height)
        row_g = tl.full([BLOCK], 0.0, tl.float32)
        row_s = tl.full([BLOCK], 0.0, tl.float32)
        row_gs = tl.full([BLOCK], 0.0, tl.float32)
        row_gg = tl.full([BLOCK], 0.0, tl.float32)
        for dx in tl.static_range(2 * RADIUS + 1):
            column = x + (dx - RADIUS)
            inside = row_inside & (column >= 0) & (column < width)
            g = tl.load(guide_ptr + guide_base + row * guide_h + column * guide_w, mask=inside, other=0.0)
            s = tl.load(src_ptr + src_base + row * src_h + column * src_w, mask=inside, other=0.0)
            row_g += g
            row_s += s
            row_gs += g * s
            row_gg += g * g
        sum_g += row_g
        sum_s += row_s
        sum_gs += row_gs
        sum_gg += row_gg
    count = _window_count(y, x, height, width, RADIUS)
    mean_g, mean_s = tl.div_rn(sum_g, count), tl.div_rn(sum_s, count)
    mean_gs, mean_gg = tl.div_rn(sum_gs, count), tl.div_rn(sum_gg, count)
    a = tl.div_rn(mean_gs - mean_g * mean_s, mean_gg - mean_g * mean_g + eps)
    tl.store(a_ptr + offsets, a, mask=mask)
    tl.store(b_ptr + offsets, mean_s - a * mean_g, mask=mask)


@triton.jit
def _guided_blend_kernel(a_ptr, b_ptr, guide_ptr, out_ptr, total, channels, height, width,
                         guide_n, guide_c, guide_h, guide_w,
                         CHANNELS_LAST: tl.constexpr, RADIUS: tl.constexpr, BLOCK: tl.constexpr):
    """The guided filter's second pass: the window means of ``a`` and ``b`` (laid out as ``out``), then
    ``mean_a * guide + mean_b``."""
    offsets = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < total
    n, channel, y, x = _coordinates(offsets, channels, height, width, CHANNELS_LAST)
    if CHANNELS_LAST:
        base, row_stride, column_stride = (n * height * width) * channels + channel, width * channels, channels
    else:
        base, row_stride, column_stride = (n * channels + channel) * height * width, width, 1
    sum_a = tl.full([BLOCK], 0.0, tl.float32)
    sum_b = tl.full([BLOCK], 0.0, tl.float32)
    for dy in tl.static_range(2 * RADIUS + 1):
        row = y + (dy - RADIUS)
        row_inside = mask & (row >= 0) & (row < height)
        row_a = tl.full([BLOCK], 0.0, tl.float32)
        row_b = tl.full([BLOCK], 0.0, tl.float32)
        for dx in tl.static_range(2 * RADIUS + 1):
            column = x + (dx - RADIUS)
            inside = row_inside & (column >= 0) & (column < width)
            index = base + row * row_stride + column * column_stride
            row_a += tl.load(a_ptr + index, mask=inside, other=0.0)
            row_b += tl.load(b_ptr + index, mask=inside, other=0.0)
        sum_a += row_a
        sum_b += row_b
    count = _window_count(y, x, height, width, RADIUS)
    guide = tl.load(guide_ptr + n * guide_n + channel * guide_c + y * guide_h + x * guide_w, mask=mask)
    tl.store(out_ptr + offsets, tl.div_rn(sum_a, count) * guide + tl.div_rn(sum_b, count), mask=mask)


def _on(x: torch.Tensor):
    """The device context to launch on: triton launches on the current CUDA device, which need not be ``x``'s."""
    return torch.cuda.device(x.device) if x.device.type == "cuda" else contextlib.nullcontext()


def _layout(x: torch.Tensor) -> torch.memory_format:
    """The dense layout ``x`` is in (NCHW preferred where both fit, e.g. one channel), or NCHW for anything else."""
    if not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


def _check(x: torch.Tensor, name: str, like: torch.Tensor) -> None:
    if x.dtype != like.dtype or x.device != like.device:
        raise ValueError(f"{name}: {x.dtype} on {x.device}, expected {like.dtype} on {like.device}")


def bias_act(y: torch.Tensor, bias: torch.Tensor, *, leaky: bool = True, residual: torch.Tensor | None = None,
             out: torch.Tensor | None = None) -> torch.Tensor:
    """``leaky_relu(y + bias)`` (``leaky``) plus ``residual`` if given, ``y`` ``(N, C, H, W)`` and ``bias`` ``(C,)``,
    in one pass; by default in place on ``y`` (a fresh convolution output, as the eager ``_leaky`` is)."""
    if y.dim() != 4 or bias.shape != (y.shape[1],):
        raise ValueError(f"bias_act: y {tuple(y.shape)} and bias {tuple(bias.shape)} do not match")
    _check_device(y)
    layout = _layout(y)
    y = y.contiguous(memory_format=layout)
    _check(bias, "bias", y)
    if residual is not None:
        if residual.shape != y.shape:
            raise ValueError(f"bias_act: residual {tuple(residual.shape)} is not y's {tuple(y.shape)}")
        _check(residual, "residual", y)
        residual = residual.contiguous(memory_format=layout)
    out = y if out is None else out
    if out.shape != y.shape or not out.is_contiguous(memory_format=layout):
        raise ValueError("bias_act: out must have y's shape and layout")
    total = y.numel()
    if total:
        with _on(y):
            _bias_act_kernel[(triton.cdiv(total, BLOCK),)](
                y, bias.contiguous(), residual if residual is not None else y, out, total, y.shape[1],
                y.shape[2] * y.shape[3], CHANNELS_LAST=layout == torch.channels_last, LEAKY=leaky,
                RESIDUAL=residual is not None, SLOPE=LEAKY_SLOPE, BLOCK=BLOCK)
    return out


def upsample2x_add(low: torch.Tensor, skip: torch.Tensor, bias: torch.Tensor | None = None, *,
                   leaky: bool = False) -> torch.Tensor:
    """``upsample2x_tf_legacy(act(low)) + skip`` in one pass, ``act`` being ``+ bias`` then leaky ReLU (``leaky``)
    as given: ``low`` ``(N, C, H, W)``, ``skip`` ``(N, C, 2H, 2W)``; a new tensor in ``skip``'s layout."""
    if low.dim() != 4 or skip.shape != (*low.shape[:2], 2 * low.shape[2], 2 * low.shape[3]):
        raise ValueError(f"upsample2x_add: skip {tuple(skip.shape)} is not twice low {tuple(low.shape)}")
    if bias is not None and bias.shape != (low.shape[1],):
        raise ValueError(f"upsample2x_add: bias {tuple(bias.shape)} for {low.shape[1]} channels")
    _check(skip, "skip", low)
    _check_device(low)
    layout = _layout(skip)
    skip = skip.contiguous(memory_format=layout)
    low = low.contiguous(memory_format=layout)
    if bias is not None:
        _check(bias, "bias", low)
    out = torch.empty_like(skip, memory_format=layout)
    total = out.numel()
    if total:
        bias_or_zeros = bias.contiguous() if bias is not None else low.new_zeros(low.shape[1])
        with _on(low):
            _upsample2x_add_kernel[(triton.cdiv(total, BLOCK),)](
                low, bias_or_zeros, skip, out, total, low.shape[1], low.shape[2], low.shape[3],
                CHANNELS_LAST=layout == torch.channels_last, BIAS=bias is not None, LEAKY=leaky, SLOPE=LEAKY_SLOPE,
                BLOCK=BLOCK)
    return out


GUIDED_OPTIONS = {"enable_fp_fusion": False}
"""Triton's compile options for the guided filter's kernels: no multiply-add fused into one rounding, as eager rounds
each product (the interpreter ignores it). With :func:`triton.language.div_rn` for every division (Triton's ``/`` is
an approximate ``div.full.f32`` on CUDA) each value is rounded where and as eager rounds it."""
MAX_GUIDED_RADIUS = 8
"""The largest radius :func:`guided_filter` runs as kernels (each unrolls its ``(2r+1)^2`` window); larger ones run
the eager :func:`~cartoonkit.network.guided_filter`. The network's is 1."""


def guided_filter(guide: torch.Tensor, src: torch.Tensor, radius: int, eps: float,
                  counts: torch.Tensor | None = None) -> torch.Tensor:
    """:func:`cartoonkit.network.guided_filter` (float32, ``(N, C, H, W)``) as two kernels instead of about twenty:
    the four window means, ``a`` and ``b`` in one pass, their two window means and the blend in a second. The window
    counts are computed in the kernels (``counts``, for the eager signature, is ignored). The same sums in the same
    order, each product and division rounded as eager rounds them (:data:`GUIDED_OPTIONS`): equal to eager under the
    interpreter; tested within 1e-5 on ``[-1, 1]`` (eager's own CUDA kernels may round otherwise).

    ``guide`` and ``src`` may have any strides (the network passes channels-last, NCHW or the widened last
    convolution's channel slice); the result is float32, dense, in ``guide``'s layout (NCHW unless channels-last)."""
    if guide.dim() != 4 or src.shape != guide.shape:
        raise ValueError(f"guided_filter: guide {tuple(guide.shape)} and src {tuple(src.shape)} do not match")
    if guide.dtype != torch.float32 or src.dtype != torch.float32 or src.device != guide.device:
        raise ValueError(f"guided_filter: float32 on one device expected, got guide {guide.dtype} on {guide.device} "
                         f"and src {src.dtype} on {src.device}")
    if radius < 0:
        raise ValueError(f"guided_filter: radius {radius} is negative")
    if radius > MAX_GUIDED_RADIUS:
        return network_guided_filter(guide, src, radius, eps, counts)
    _check_device(guide)
    layout = _layout(guide)
    out = torch.empty_like(guide, memory_format=layout)
    a, b = torch.empty_like(out), torch.empty_like(out)
    total = out.numel()
    if total:
        shape = dict(channels=guide.shape[1], height=guide.shape[2], width=guide.shape[3])
        constants = dict(CHANNELS_LAST=layout == torch.channels_last, RADIUS=radius, BLOCK=BLOCK)
        grid = (triton.cdiv(total, BLOCK),)
        with _on(guide):
            _guided_ab_kernel[grid](guide, src, a, b, total, *shape.values(), *guide.stride(), *src.stride(),
                                    float(eps), **constants, **GUIDED_OPTIONS)
            _guided_blend_kernel[grid](a, b, guide, out, total, *shape.values(), *guide.stride(), **constants,
                                       **GUIDED_OPTIONS)
    return out


def conv_without_bias(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """``conv`` applied as :func:`~cartoonkit.network.conv_same` does (TF ``SAME`` padding, and the zero channels of
    a widened :class:`~cartoonkit.edge_channels.WidenedInputConv`), without its bias: the kernels add it."""
    missing = conv.in_channels - x.shape[1]
    if missing:
        x = torch.nn.functional.pad(x, (0, 0, 0, 0, 0, missing))
    if conv.stride[0] != 1:
        kernel = conv.kernel_size[0]
        top, bottom = same_padding(x.shape[-2], kernel, conv.stride[0])
        left, right = same_padding(x.shape[-1], kernel, conv.stride[1])
        x = torch.nn.functional.pad(x, (left, right, top, bottom))
    return conv._conv_forward(x, conv.weight, None)


def conv_leaky(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """``leaky_relu(conv(x))``: the convolution without bias, then :func:`bias_act` in place."""
    return bias_act(conv_without_bias(conv, x), conv.bias)


class FusedUNetGenerator(UNetGenerator):
    """:class:`~cartoonkit.network.UNetGenerator` whose element-wise gaps run as the Triton kernels above: the same
    modules and weights, another ``forward``. Made from a loaded generator by :func:`use_fused_kernels`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x0 = conv_leaky(self.conv0, x)
        x1 = conv_leaky(self.conv2, conv_leaky(self.conv1, x0))
        x2 = conv_leaky(self.conv4, conv_leaky(self.conv3, x1))
        for block in self.blocks:
            inner = conv_leaky(block.conv1, x2)
            x2 = bias_act(conv_without_bias(block.conv2, inner), block.conv2.bias, leaky=False, residual=x2)
        x3 = upsample2x_add(conv_without_bias(self.conv5, x2), x1, self.conv5.bias, leaky=True)
        x3 = conv_leaky(self.conv6, x3)
        x4 = upsample2x_add(conv_without_bias(self.conv7, x3), x0, self.conv7.bias, leaky=True)
        return self.conv9(conv_leaky(self.conv8, x4))


def use_fused_kernels(generator: UNetGenerator) -> FusedUNetGenerator:
    """``generator`` (in place: its class, nothing else, changes; returns it) running its gaps as Triton kernels.
    Its state dict and modules stay the same, so it composes with :func:`~cartoonkit.edge_channels.pad_edge_channels`
    (either order)."""
    if not isinstance(generator, UNetGenerator):
        raise TypeError(f"use_fused_kernels: expected a UNetGenerator, got {type(generator).__name__}")
    generator.__class__ = FusedUNetGenerator
    return generator


def use_fused_guided_filter(network: CartoonNetwork) -> CartoonNetwork:
    """``network`` (in place; returns it) running its guided-filter head as :func:`guided_filter`'s two kernels."""
    if not isinstance(network, CartoonNetwork):
        raise TypeError(f"use_fused_guided_filter: expected a CartoonNetwork, got {type(network).__name__}")
    network.head = guided_filter
    return network
