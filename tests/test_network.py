"""The network against slow, obviously right references and against the TFLite interpreter."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cartoonkit import network
from cartoonkit.network import (
    CartoonNetwork,
    box_mean,
    conv_same,
    guided_filter,
    same_conv,
    same_padding,
    upsample2x_tf_legacy,
)

PARITY_PHOTOS = ["wb_actress2.jpg", "wb_party5.jpg", "wb_liuyifei4.jpg", "wb_london1.jpg"]


def slow_upsample2x_tf_legacy(x: np.ndarray) -> np.ndarray:
    """TF1 resize_bilinear(align_corners=False, half_pixel_centers=False), pixel by pixel."""
    n, c, h, w = x.shape
    out = np.zeros((n, c, 2 * h, 2 * w), dtype=np.float64)
    for oy in range(2 * h):
        sy = oy * h / (2 * h)
        y0, y1, dy = int(math.floor(sy)), min(int(math.floor(sy)) + 1, h - 1), sy - math.floor(sy)
        for ox in range(2 * w):
            sx = ox * w / (2 * w)
            x0, x1, dx = int(math.floor(sx)), min(int(math.floor(sx)) + 1, w - 1), sx - math.floor(sx)
            top = x[:, :, y0, x0] * (1 - dx) + x[:, :, y0, x1] * dx
            bottom = x[:, :, y1, x0] * (1 - dx) + x[:, :, y1, x1] * dx
            out[:, :, oy, ox] = top * (1 - dy) + bottom * dy
    return out


def slow_box_mean(x: np.ndarray, r: int) -> np.ndarray:
    n, c, h, w = x.shape
    out = np.zeros_like(x, dtype=np.float64)
    for i in range(h):
        for j in range(w):
            window = x[:, :, max(0, i - r):i + r + 1, max(0, j - r):j + r + 1]
            out[:, :, i, j] = window.mean(axis=(2, 3))
    return out


def slow_guided_filter(guide: np.ndarray, src: np.ndarray, r: int, eps: float) -> np.ndarray:
    mean_i, mean_p = slow_box_mean(guide, r), slow_box_mean(src, r)
    a = (slow_box_mean(guide * src, r) - mean_i * mean_p) / (slow_box_mean(guide * guide, r) - mean_i ** 2 + eps)
    b = mean_p - a * mean_i
    return slow_box_mean(a, r) * guide + slow_box_mean(b, r)


def slow_conv_tf_same(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, stride: int) -> np.ndarray:
    """Direct convolution with TensorFlow SAME padding: output size ceil(n / stride), pad split low-first."""
    n, cin, h, w = x.shape
    cout, _, k, _ = weight.shape
    oh, ow = -(-h // stride), -(-w // stride)
    pad_h = max((oh - 1) * stride + k - h, 0)
    pad_w = max((ow - 1) * stride + k - w, 0)
    top, left = pad_h // 2, pad_w // 2
    padded = np.zeros((n, cin, h + pad_h, w + pad_w))
    padded[:, :, top:top + h, left:left + w] = x
    out = np.zeros((n, cout, oh, ow))
    for i in range(oh):
        for j in range(ow):
            patch = padded[:, :, i * stride:i * stride + k, j * stride:j * stride + k]
            out[:, :, i, j] = np.einsum("nchw,ochw->no", patch, weight) + bias
    return out


@pytest.mark.parametrize("size,kernel,stride,expected", [
    (224, 3, 2, (0, 1)), (7, 3, 2, (1, 1)), (224, 7, 1, (3, 3)), (5, 3, 1, (1, 1)), (8, 7, 2, (2, 3))])
def test_same_padding_matches_tensorflow_rule(size, kernel, stride, expected):
    assert same_padding(size, kernel, stride) == expected


@pytest.mark.parametrize("shape", [(1, 2, 5, 7), (2, 3, 1, 4), (1, 1, 6, 1)])
def test_legacy_upsample_matches_reference(shape):
    x = torch.randn(shape, dtype=torch.float64)
    expected = slow_upsample2x_tf_legacy(x.numpy())
    np.testing.assert_allclose(upsample2x_tf_legacy(x).numpy(), expected, atol=1e-12)


@pytest.mark.parametrize("shape", [(1, 4, 5, 7), (2, 3, 6, 4)])
def test_legacy_upsample_channels_last_matches_reference_and_stays_channels_last(shape):
    """The eager channels-last formulation: same values as the reference, and the layout kept."""
    x = torch.randn(shape, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    got = upsample2x_tf_legacy(x)
    np.testing.assert_allclose(got.numpy(), slow_upsample2x_tf_legacy(x.numpy()), atol=1e-12)
    assert got.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_legacy_upsample_formulations_agree_exactly_in_eager(dtype):
    """The channels-last and NCHW eager formulations round identically, in bfloat16 too (why the output
    hashes did not move when the channels-last one was added)."""
    x = torch.randn(1, 8, 6, 10).to(dtype)
    assert torch.equal(upsample2x_tf_legacy(x), upsample2x_tf_legacy(x.contiguous(memory_format=torch.channels_last)))


def test_legacy_upsample_traced_formulation_matches_reference():
    """Under torch.compile the gather formulation runs; it must give the reference's values."""
    x = torch.randn(1, 3, 5, 6, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    compiled = torch.compile(upsample2x_tf_legacy, backend="aot_eager", fullgraph=True)
    np.testing.assert_allclose(compiled(x).numpy(), slow_upsample2x_tf_legacy(x.numpy()), atol=1e-12)


def test_guided_filter_on_channels_last_input_and_repeated_sizes():
    """The window counts come from a cache: a second size must not reuse the first one's counts."""
    for shape in [(1, 3, 6, 8), (1, 3, 8, 6), (1, 3, 6, 8)]:
        guide = (torch.rand(shape, dtype=torch.float64) * 2 - 1).contiguous(memory_format=torch.channels_last)
        src = torch.rand(shape, dtype=torch.float64) * 2 - 1
        np.testing.assert_allclose(guided_filter(guide, src, 1, 5e-3).numpy(),
                                   slow_guided_filter(guide.numpy(), src.numpy(), 1, 5e-3), atol=1e-10)


def test_compiled_network_equals_eager():
    """torch.compile runs the guided filter eagerly (a graph break) and the up-sampling as a gather:
    the compiled float32 network must still compute the eager network's values."""
    torch.manual_seed(0)
    net = CartoonNetwork().eval()
    x = torch.rand(1, 3, 16, 24) * 2 - 1
    compiled = torch.compile(net, backend="aot_eager")
    with torch.no_grad():
        np.testing.assert_allclose(compiled(x).numpy(), net(x).numpy(), atol=1e-5)


def test_legacy_upsample_differs_from_half_pixel_interpolate():
    x = torch.randn(1, 1, 6, 6)
    half_pixel = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    assert (upsample2x_tf_legacy(x) - half_pixel).abs().max() > 0.05


@pytest.mark.parametrize("shape", [(1, 3, 7, 9), (2, 3, 4, 4), (1, 3, 1, 5)])
def test_box_mean_and_guided_filter_match_reference(shape):
    guide = torch.rand(shape, dtype=torch.float64) * 2 - 1
    src = torch.rand(shape, dtype=torch.float64) * 2 - 1
    np.testing.assert_allclose(box_mean(src, 1).numpy(), slow_box_mean(src.numpy(), 1), atol=1e-12)
    np.testing.assert_allclose(guided_filter(guide, src, 1, 5e-3).numpy(),
                               slow_guided_filter(guide.numpy(), src.numpy(), 1, 5e-3), atol=1e-10)


@pytest.mark.parametrize("size,kernel,stride", [((8, 6), 3, 2), ((7, 5), 3, 2), ((6, 5), 7, 1), ((5, 4), 3, 1)])
def test_same_conv_matches_direct_convolution(size, kernel, stride):
    conv = same_conv(2, 3, kernel, stride=stride).double()
    x = torch.randn(1, 2, *size, dtype=torch.float64)
    expected = slow_conv_tf_same(x.numpy(), conv.weight.detach().numpy(), conv.bias.detach().numpy(), stride)
    np.testing.assert_allclose(conv_same(conv, x).detach().numpy(), expected, atol=1e-10)


def test_network_shapes_and_parameter_count():
    net = CartoonNetwork()
    assert sum(p.numel() for p in net.parameters()) == 1_467_075
    assert net(torch.zeros(2, 3, 16, 20)).shape == (2, 3, 16, 20)
    with pytest.raises(ValueError, match="multiples of 4"):
        net(torch.zeros(1, 3, 18, 20))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        net(torch.zeros(3, 16, 16))


def _tflite_and_torch(tflite_file):
    from ai_edge_litert.interpreter import Interpreter

    from cartoonkit.weights.tflite_import import read_tflite_weights

    net = CartoonNetwork()
    state = read_tflite_weights(tflite_file)
    net.load_state_dict({k: torch.from_numpy(v.astype(np.float32)) for k, v in state.items()})
    interpreter = Interpreter(model_path=str(tflite_file))
    interpreter.allocate_tensors()
    return interpreter, net.eval()


def _tflite_run(interpreter, x_nhwc: np.ndarray) -> np.ndarray:
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x_nhwc)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def _photo_224_bgr(path) -> np.ndarray:
    import cv2

    return cv2.resize(cv2.imread(str(path)), (224, 224), interpolation=cv2.INTER_AREA)


def test_parity_with_tflite_interpreter_on_real_photos(tflite_file, shared_images):
    """Max abs difference on the [-1, 1] scale; the issue asks for <= 1e-3, we hold it to 2e-4."""
    interpreter, net = _tflite_and_torch(tflite_file)
    for name in PARITY_PHOTOS:
        x = _photo_224_bgr(shared_images / name).astype(np.float32) / 127.5 - 1
        expected = _tflite_run(interpreter, x[None])[0]
        with torch.inference_mode():
            got = net(torch.from_numpy(x).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()
        diff = np.abs(got - expected).max()
        assert diff <= 2e-4, f"{name}: max abs difference {diff:.2e}"


def test_parity_test_would_catch_half_pixel_upsampling(tflite_file, shared_images, monkeypatch):
    """The same comparison fails when the up-sampling uses PyTorch's half-pixel centres."""
    interpreter, net = _tflite_and_torch(tflite_file)
    monkeypatch.setattr(network, "upsample2x_tf_legacy",
                        lambda t: F.interpolate(t, scale_factor=2, mode="bilinear", align_corners=False))
    x = _photo_224_bgr(shared_images / PARITY_PHOTOS[0]).astype(np.float32) / 127.5 - 1
    expected = _tflite_run(interpreter, x[None])[0]
    with torch.inference_mode():
        got = net(torch.from_numpy(x).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()
    assert np.abs(got - expected).max() > 1e-2
