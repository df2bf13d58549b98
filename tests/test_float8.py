"""Issue 23's float8 step: the residual blocks' 3x3 convolutions in float8 E4M3 through ``torch._scaled_mm``.

``_scaled_mm`` also runs on the CPU in this torch, so the arithmetic is checked here; the engine refuses float8
anywhere but CUDA with compute capability >= 8.9, and the ``gpu`` test checks it there.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from cartoonkit.bench.images import psnr, square_photo
from cartoonkit.engine import Engine, EngineOptions, resolve_precision
from cartoonkit.errors import ConfigError
from cartoonkit.float8 import (
    FLOAT8,
    Float8Conv2d,
    check_float8_device,
    float8_conv3x3,
    power_of_two_scale,
    quantize_weight,
    use_float8_blocks,
)
from cartoonkit.imageio import read_image
from cartoonkit.options import precision_name
from cartoonkit.weights import load_network

# E4M3 keeps 3 mantissa bits: a relative rounding error up to 2^-4 (6.25 %) per value, about 2^-4 / sqrt(3) (3.6 %)
# in the mean square. Input and weight are each rounded once, and a sum of many products averages the errors, so the
# convolution's output is within a few percent of float32 in the Frobenius norm (measured: 3.6 %).
RELATIVE_TOLERANCE = 0.06

PHOTOS = ("wb_actress2.jpg", "wb_party5.jpg", "wb_food16.jpg")


def _conv(channels: int = 128, seed: int = 0) -> torch.nn.Conv2d:
    torch.manual_seed(seed)
    conv = torch.nn.Conv2d(channels, channels, 3, padding=1)
    with torch.no_grad():
        conv.bias.mul_(30)  # a bias as large as the sums, so that leaving it out shows
    return conv


def _relative_error(out: torch.Tensor, reference: torch.Tensor) -> float:
    return ((out.float() - reference).norm() / reference.norm()).item()


def test_float8_convolution_matches_float32_within_e4m3_error():
    conv = _conv()
    x = torch.randn(2, 128, 20, 24) * 5
    reference = F.conv2d(x, conv.weight, conv.bias, padding=1)
    weight_q, weight_scale = quantize_weight(conv.weight)
    assert weight_q.dtype == FLOAT8 and weight_q.shape == (128, 9 * 128)
    out = float8_conv3x3(x, weight_q, weight_scale, conv.bias)
    assert _relative_error(out, reference) < RELATIVE_TOLERANCE
    # With the bias fused into _scaled_mm (bfloat16 output) and on a channels-last input: the same bound.
    x_cl = x.bfloat16().contiguous(memory_format=torch.channels_last)
    out_bf16 = float8_conv3x3(x_cl, weight_q, weight_scale, conv.bias.bfloat16())
    assert out_bf16.dtype == torch.bfloat16
    assert _relative_error(out_bf16, reference) < RELATIVE_TOLERANCE
    # An error this small is not a wrong convolution: without the bias, or shifted by a pixel, it is far off.
    assert _relative_error(float8_conv3x3(x, weight_q, weight_scale, None), reference) > 0.1
    assert _relative_error(out.roll(1, dims=-1), reference) > 0.5


def test_float8_convolution_shape_layout_and_dtype():
    conv = _conv()
    layer = Float8Conv2d(conv)
    for x in (torch.randn(3, 128, 8, 12), torch.randn(1, 128, 5, 7).contiguous(memory_format=torch.channels_last)):
        out = layer(x)
        assert out.shape == (x.shape[0], 128, *x.shape[-2:]) and out.dtype == x.dtype
        assert out.is_contiguous(memory_format=torch.channels_last)
    # The engine casts the generator: the bias follows, the quantized weight (kept as bytes) does not.
    layer.to(torch.bfloat16)
    assert layer.weight_bytes.dtype == torch.uint8 and layer.bias.dtype == torch.bfloat16
    x = torch.randn(1, 128, 6, 6)
    reference = F.conv2d(x, conv.weight, conv.bias, padding=1)
    assert _relative_error(layer(x.bfloat16()), reference) < RELATIVE_TOLERANCE
    with pytest.raises(ValueError, match="3x3"):
        Float8Conv2d(torch.nn.Conv2d(128, 128, 3, stride=2))


def test_scales_are_powers_of_two_computed_on_the_device():
    """The activation scale stays a tensor: the layer runs on the meta device, where any host read (``.item()``,
    ``float()``, ``bool()`` of a value) raises, so a scale read on the host would fail here."""
    layer = Float8Conv2d(_conv()).to("meta")
    x = torch.randn(2, 128, 16, 16, device="meta")
    out = layer(x)
    assert out.device.type == "meta" and out.shape == (2, 128, 16, 16)
    with pytest.raises(RuntimeError, match="meta"):  # the check itself can fail: a host read on meta raises
        x.abs().amax().item()
    scale = power_of_two_scale(torch.tensor(448.0 * 3))
    assert scale.item() == 4.0  # 3 rounded up to a power of two: exact scaling
    assert power_of_two_scale(torch.tensor(0.0)).item() > 0  # an all-zero tensor: a finite scale
    assert torch.isfinite(float8_conv3x3(torch.zeros(1, 128, 4, 4), *quantize_weight(_conv().weight), None)).all()


def test_the_network_keeps_40_db_on_real_photos(models_dir, shared_images):
    """The whole network with its 8 residual convolutions in float8 and the rest in float32, on the CPU, against
    float32, through the engine's conversions. Measured (PSNR in dB at 256 / 384 px): wb_actress2 49.6 / 50.2,
    wb_party5 49.2 / 49.3, wb_food16 47.1 / 46.9 (also wb_liuyifei4 51.4 / 51.4, wb_london1 49.5 / 49.8,
    wb_mountain4 51.2 / 51.6). On CUDA the rest is float16, itself 80 dB from float32: the gpu test below."""
    network = load_network(models_dir=models_dir)[0]
    reference = Engine(network, EngineOptions(device="cpu", precision="float32"))
    float8_network = use_float8_blocks(copy.deepcopy(network).generator)
    assert all(isinstance(block.conv1, Float8Conv2d) and isinstance(block.conv2, Float8Conv2d)
               for block in float8_network.blocks)
    assert isinstance(network.generator.blocks[0].conv1, torch.nn.Conv2d)  # the original is untouched
    wrapped = copy.deepcopy(network)
    wrapped.generator = float8_network
    float8 = Engine(wrapped, EngineOptions(device="cpu", precision="float32"))
    for name in PHOTOS:
        photo = square_photo(read_image(shared_images / name).rgb, 256)[None]
        assert psnr(float8(photo), reference(photo)) >= 40, name


def test_float8_is_refused_off_cuda_and_below_compute_capability_8_9(models_dir, monkeypatch):
    network = load_network(models_dir=models_dir)[0]
    with pytest.raises(ConfigError, match="float8.*CUDA only"):
        Engine(network, EngineOptions(device="cpu", precision="float8"))
    with pytest.raises(ConfigError, match="float8"):
        precision_name("float8", "cpu")
    with pytest.raises(ConfigError, match="compute capability >= 8.9"):
        check_float8_device(torch.device("cpu"))
    assert precision_name("auto", "cuda") == "float16"  # auto never picks float8
    assert resolve_precision("float8", torch.device("cuda")) == torch.float16  # the dtype around the float8 convs
    # A CUDA device without float8 tensor cores (an A100, 8.0): refused before anything moves to it.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 0))
    with pytest.raises(ConfigError, match="compute capability >= 8.9.*8.0"):
        Engine(network, EngineOptions(device="cuda", precision="float8"))
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    check_float8_device(torch.device("cuda"))  # an H100/H200 passes the check
    with pytest.raises(ConfigError, match="fused_kernels"):
        Engine(network, EngineOptions(device="cuda", precision="float8", fused_kernels=True))


@pytest.mark.gpu
def test_float8_engine_on_cuda_keeps_40_db(models_dir, shared_images):
    if torch.cuda.get_device_capability() < (8, 9):
        pytest.skip("float8 needs compute capability >= 8.9")
    network = load_network(models_dir=models_dir)[0]
    reference = Engine(network, EngineOptions(device="cuda", precision="float32"))
    float8 = Engine(network, EngineOptions(device="cuda", precision="float8"))
    assert float8.precision == "float8"
    for name in PHOTOS:
        photo = square_photo(read_image(shared_images / name).rgb, 384)[None]
        value = psnr(float8(photo).cpu(), reference(photo).cpu())
        print(f"float8 on CUDA, {name} at 384 px: {value:.2f} dB against float32")
        assert value >= 40, name
