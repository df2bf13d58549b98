"""The polyphase convolution against PyTorch's direct convolution, in float64 and in int8."""

from __future__ import annotations

import platform

import pytest
import torch
import torch.nn.functional as F

from cartoonkit.polyphase import PolyphaseConv2d, from_phases, polyphase_weight, to_phases


@pytest.mark.parametrize("kernel", [1, 3, 5, 7, 9])
@pytest.mark.parametrize("channels", [(5, 3), (2, 8)])
def test_polyphase_conv_equals_direct_convolution(kernel, channels):
    torch.manual_seed(kernel)
    conv = torch.nn.Conv2d(*channels, kernel, padding=kernel // 2).double()
    x = torch.randn(2, channels[0], 12, 10, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(PolyphaseConv2d(conv)(x), F.conv2d(x, conv.weight, conv.bias, padding=kernel // 2),
                                   atol=1e-12, rtol=0)


def test_polyphase_conv_on_channels_last_input():
    conv = torch.nn.Conv2d(32, 3, 7, padding=3)
    x = torch.randn(1, 32, 16, 20).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        torch.testing.assert_close(PolyphaseConv2d(conv)(x), conv(x), atol=1e-5, rtol=1e-5)


def test_phases_round_trip_and_order():
    x = torch.arange(2 * 3 * 4 * 6).reshape(2, 3, 4, 6)
    phases = to_phases(x)
    assert phases.shape == (2, 12, 2, 3)
    # channel (i * 2 + j) * C + c holds x[c, 2p + i, 2q + j]
    assert phases[1, (1 * 2 + 0) * 3 + 2, 1, 2] == x[1, 2, 2 * 1 + 1, 2 * 2 + 0]
    assert torch.equal(from_phases(to_phases(x)), x)


def test_phase_kernel_holds_each_weight_once_per_output_phase():
    weight = torch.randn(3, 4, 7, 7)
    phased = polyphase_weight(weight)
    assert phased.shape == (12, 16, 5, 5)
    for phase in range(4):
        block = phased[phase * 3:(phase + 1) * 3]
        assert torch.isclose(block.abs().sum(), weight.abs().sum())
        assert torch.equal(block.abs().amax(dim=(1, 2, 3)), weight.abs().amax(dim=(1, 2, 3)))  # same int8 scales


@pytest.mark.parametrize("conv", [torch.nn.Conv2d(3, 3, 7, stride=2, padding=3), torch.nn.Conv2d(3, 3, 4, padding=2),
                                  torch.nn.Conv2d(3, 3, 3, padding=0)])
def test_polyphase_conv_refuses_what_it_cannot_compute(conv):
    with pytest.raises(ValueError):
        PolyphaseConv2d(conv)


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="oneDNN int8 convolutions are x86 only")
def test_int8_polyphase_conv_is_bit_identical_to_direct():
    """Quantized and lowered to oneDNN, both layouts compute the same integer sums: equal outputs."""
    import torch._inductor.config as inductor_config

    from cartoonkit.quantize import _import_torchao

    pt2e, x86 = _import_torchao()

    class Head(torch.nn.Module):
        def __init__(self, conv):
            super().__init__()
            self.conv = conv

        def forward(self, x):
            return self.conv(F.leaky_relu(x, 0.2))

    torch.manual_seed(0)
    conv = torch.nn.Conv2d(32, 3, 7, padding=3)
    x = torch.randn(1, 32, 32, 24).contiguous(memory_format=torch.channels_last)

    def int8(module):
        quantizer = x86.X86InductorQuantizer()
        quantizer.set_global(x86.get_default_x86_inductor_quantization_config())
        prepared = pt2e.prepare_pt2e(torch.export.export(module.eval(), (x,)).module(), quantizer)
        prepared(x)
        return torch.compile(pt2e.convert_pt2e(prepared))

    with torch.no_grad(), inductor_config.patch(freezing=True):
        direct, phased = int8(Head(conv))(x), int8(Head(PolyphaseConv2d(conv)))(x)
    assert torch.equal(direct, phased)
    assert (direct - conv(F.leaky_relu(x, 0.2))).abs().max() < 0.1   # and it is the convolution, quantized
