"""The int8 precision: quality against float32 on real photos, independence from the batch, the graph it builds."""

from __future__ import annotations

import sys
from collections import Counter

import pytest
import torch

from cartoonkit import quantize
from cartoonkit.bench.images import psnr, square_photo
from cartoonkit.cli import build_parser, engine_options_from_args
from cartoonkit.engine import COMPILED_BUCKET, Engine, EngineOptions, resolve_precision
from cartoonkit.errors import ConfigError
from cartoonkit.imageio import read_image
from cartoonkit.weights import load_network

# Real photos, none of them in the calibration set (scikit-image's photos).
PHOTOS = ("wb_actress2.jpg", "wb_party5.jpg", "ag3_v3_3.jpg")


@pytest.fixture(scope="module")
def photos(shared_images):
    return [square_photo(read_image(shared_images / name).rgb, 256) for name in PHOTOS]


@pytest.fixture(scope="module")
def int8_engine(models_dir):
    return Engine(load_network(models_dir=models_dir)[0], EngineOptions(device="cpu", precision="int8"))


def test_int8_is_x86_cpu_only_and_always_compiled(monkeypatch):
    assert resolve_precision("int8", torch.device("cpu")) == torch.int8
    with pytest.raises(ConfigError, match="int8.*CPU only"):
        resolve_precision("int8", torch.device("cuda"))
    monkeypatch.setattr("platform.machine", lambda: "aarch64")
    with pytest.raises(ConfigError, match="x86-64"):
        resolve_precision("int8", torch.device("cpu"))
    monkeypatch.undo()
    assert EngineOptions(precision="int8").compiled
    assert not EngineOptions(precision="bfloat16").compiled
    args = build_parser().parse_args(["batch", "in", "--precision", "int8"])
    assert engine_options_from_args(args).padding == COMPILED_BUCKET


def test_missing_torchao_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchao.quantization.pt2e.quantize_pt2e", None)
    with pytest.raises(ConfigError, match="needs torchao"):
        quantize._import_torchao()


def test_calibration_set_is_fixed_and_shaped():
    first, second = quantize.calibration_inputs(64), quantize.calibration_inputs(64)
    assert len(first) == len(quantize.CALIBRATION_PHOTOS)
    for a, b in zip(first, second, strict=True):
        assert a.shape == (1, 3, 64, 64)
        assert -1 <= a.min() and a.max() <= 1
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_every_other_convolution_is_int8(models_dir):
    """The quantizer must see the convolutions: a layer type it does not recognise is silently left float."""
    pt2e, _ = quantize._import_torchao()
    network = load_network(models_dir=models_dir)[0].eval()
    example = torch.zeros(1, 3, 64, 64)
    with torch.no_grad():
        prepared = quantize._prepare(network.generator, example, quantize.FLOAT_LAYERS)
        prepared(example)
        graph = pt2e.convert_pt2e(prepared).graph
    ops = Counter(str(node.target) for node in graph.nodes if node.op == "call_function")
    convolutions = ops["aten.conv2d.default"]
    assert convolutions == 18
    # Each int8 convolution's weight is dequantized per output channel; the float layers have none.
    assert ops["quantized_decomposed.dequantize_per_channel.default"] == convolutions - len(quantize.FLOAT_LAYERS)


def test_int8_keeps_40_db_on_real_photos(models_dir, photos, int8_engine):
    reference = Engine(load_network(models_dir=models_dir)[0],
                       EngineOptions(device="cpu", precision="float32", channels_last=False))
    for name, photo in zip(PHOTOS, photos, strict=True):
        quality = psnr(int8_engine(photo[None]), reference(photo[None]))
        assert 40 <= quality < 80, (name, quality)  # int8, really: far from float32's ~140 dB


def test_int8_result_does_not_depend_on_the_batch(photos, int8_engine):
    alone = int8_engine(photos[0][None])
    together = int8_engine(torch.stack(photos[:2]))
    # Static per-tensor scales and exact int32 accumulation: only the bfloat16 work in between may round
    # differently at another batch size.
    assert psnr(together[:1], alone) > 60
    assert len(int8_engine._forward._by_shape) == 2  # one graph per shape, reused across calls
