"""Benchmark peers: the ONNX export and ONNX Runtime, the naive PIL + eager pipeline, the TFLite interpreter."""

from __future__ import annotations

import sys

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from cartoonkit.bench.peers import (
    ModelRunner,
    NaivePipeline,
    OnnxRuntimeInt8Runner,
    OnnxRuntimeRunner,
    OpenVinoRunner,
    TFLiteRunner,
)
from cartoonkit.errors import CartoonkitError, ConfigError
from cartoonkit.export import (
    INPUT_NAME,
    OUTPUT_NAME,
    MissingDependencyError,
    export_onnx,
    export_openvino,
    verify_onnx,
    verify_openvino,
)

TRACE = (64, 64)
PORTRAIT = "wb_actress2.jpg"  # 756x1024, no EXIF orientation (the naive pipeline ignores EXIF)
EXPORT_TOLERANCE = 1e-4  # float32 in both; measured ~1e-6


def _photo_bgr_nchw(path, height: int, width: int) -> np.ndarray:
    """A real photo as the network takes it: (1, 3, H, W) float32 BGR in [-1, 1]."""
    bgr = cv2.resize(cv2.imread(str(path)), (width, height), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray((bgr.astype(np.float32) / 127.5 - 1).transpose(2, 0, 1)[None])


@pytest.fixture(scope="module")
def network(models_dir):
    from cartoonkit.weights import load_network

    return load_network("whitebox", models_dir=models_dir)[0]


@pytest.fixture(scope="module")
def onnx_tools():
    """Skip (rather than fail) the ONNX tests where the ``bench``/``test`` extra is not installed."""
    for module in ("onnxruntime", "onnxscript"):
        pytest.importorskip(module)
    return pytest.importorskip("onnx")


@pytest.fixture(scope="module")
def dynamic_onnx(network, onnx_tools, tmp_path_factory):
    """The default export (dynamo exporter, dynamic axes), traced at 64x64."""
    return export_onnx(network, tmp_path_factory.mktemp("onnx") / "cartoon.onnx", height=TRACE[0], width=TRACE[1])


def _input_dims(path) -> list[int | str]:
    import onnx

    dims = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim
    return [d.dim_param or d.dim_value for d in dims]


def test_dynamic_export_matches_pytorch_at_sizes_other_than_the_trace(dynamic_onnx, onnx_tools, network,
                                                                    shared_images):
    model = onnx_tools.load(str(dynamic_onnx))
    assert [i.name for i in model.graph.input] == [INPUT_NAME]
    assert [o.name for o in model.graph.output] == [OUTPUT_NAME]
    batch, channels, height, width = _input_dims(dynamic_onnx)
    assert channels == 3 and all(isinstance(d, str) for d in (batch, height, width))

    photo = _photo_bgr_nchw(shared_images / PORTRAIT, 96, 128)
    assert verify_onnx(dynamic_onnx, network, photo) <= EXPORT_TOLERANCE
    pair = np.concatenate([_photo_bgr_nchw(shared_images / n, 160, 120) for n in ("wb_party5.jpg", "wb_london1.jpg")])
    assert verify_onnx(dynamic_onnx, network, [pair, torch.from_numpy(photo[..., :32, :44])]) <= EXPORT_TOLERANCE


def test_static_export_has_the_fixed_shape(network, onnx_tools, shared_images, tmp_path):
    path = export_onnx(network, tmp_path / "fixed.onnx", height=96, width=128, dynamic=False)
    assert _input_dims(path) == [1, 3, 96, 128]
    assert verify_onnx(path, network, _photo_bgr_nchw(shared_images / PORTRAIT, 96, 128)) <= EXPORT_TOLERANCE


def test_legacy_torchscript_exporter_writes_opset_17_and_is_dynamic_too(network, onnx_tools, shared_images,
                                                                       tmp_path):
    path = export_onnx(network, tmp_path / "legacy.onnx", height=64, width=64, opset=17, dynamo=False)
    assert {o.domain: o.version for o in onnx_tools.load(str(path)).opset_import}[""] == 17
    assert verify_onnx(path, network, _photo_bgr_nchw(shared_images / PORTRAIT, 96, 128)) <= EXPORT_TOLERANCE


def test_export_rejects_bad_settings(network, tmp_path):
    with pytest.raises(ConfigError, match="height and width"):
        export_onnx(network, tmp_path / "x.onnx", dynamic=False)
    with pytest.raises(ConfigError, match="multiple of 4"):
        export_onnx(network, tmp_path / "x.onnx", height=98)
    with pytest.raises(ConfigError, match="dynamo=False"):
        export_onnx(network, tmp_path / "x.onnx", opset=17)


def test_onnxruntime_runner_matches_pytorch_and_checks_its_input(dynamic_onnx, network, shared_images):
    runner = OnnxRuntimeRunner(dynamic_onnx)
    assert isinstance(runner, ModelRunner) and runner.layout == "NCHW"
    if not torch.cuda.is_available():
        assert runner.providers == ["CPUExecutionProvider"] and runner.name == "onnxruntime-cpu-fp32"
    x = _photo_bgr_nchw(shared_images / PORTRAIT, 128, 96)
    with torch.inference_mode():
        expected = network(torch.from_numpy(x)).numpy()
    assert np.abs(runner.run(x) - expected).max() <= EXPORT_TOLERANCE
    with pytest.raises(ValueError, match="multiples of 4"):
        runner.run(x[..., :126, :])
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        runner.run(x[0])


@pytest.fixture(scope="module")
def float32_cartoonizer(models_dir):
    from cartoonkit import Cartoonizer

    return Cartoonizer.from_pretrained(device="cpu", precision="float32")


def test_naive_pipeline_writes_the_cropped_size_and_agrees_with_cartoonkit(
        network, float32_cartoonizer, shared_images, tmp_path):
    """Same network, different preprocessing, so images agree on average but not pixel for pixel.

    The naive pipeline resizes with PIL bicubic and crops to multiples of 8; cartoonkit resizes with
    antialiased bilinear and keeps every pixel. The inputs differ by a level or two, and the network's
    hard-edged output turns that into a mean difference of ~1.5-2.7 levels (of 255) on real photos,
    with single pixels on edges differing by up to ~100; we allow a mean of 4. The cartoon differs
    from the photo itself by far more, so the check cannot pass on a pipeline that skipped the network.
    """
    naive = NaivePipeline(network)
    src = shared_images / PORTRAIT  # 756 x 1024 (w x h): at 256 -> 189 x 256, cropped to 184 x 256
    dst = tmp_path / "naive.png"
    assert naive.process_file(src, dst, 256) == (256, 184)
    with Image.open(dst) as written:
        assert written.size == (184, 256) and written.mode == "RGB"
        got = np.asarray(written).astype(np.float64)

    ours = float32_cartoonizer(src, style_weight=1.0, resolution=256, output="numpy")
    assert ours.shape == (256, 189, 3)
    mean_diff = np.abs(got - ours[:256, :184]).mean()
    assert mean_diff <= 4.0, f"mean abs difference {mean_diff:.2f} levels"
    photo = naive.load_photo(src, 256).astype(np.float64)
    assert np.abs(got - photo).mean() > 3 * mean_diff

    # The model step alone: the same float32 numbers as cartoonkit's engine on the same tensor.
    x = naive.to_network(naive.load_photo(src, 256))
    with torch.inference_mode():
        engine_out = float32_cartoonizer.engine.network(x)
    assert (naive.model_only(x) - engine_out).abs().max() <= 1e-4
    assert np.abs(naive.run(x.numpy()) - engine_out.numpy()).max() <= 1e-4


def test_tflite_runner_matches_pytorch_at_224(tflite_file, network, shared_images):
    runner = TFLiteRunner(tflite_file)
    assert isinstance(runner, ModelRunner) and runner.layout == "NHWC" and runner.input_shape == (1, 224, 224, 3)
    for name in (PORTRAIT, "wb_party5.jpg"):
        x = _photo_bgr_nchw(shared_images / name, 224, 224)
        with torch.inference_mode():
            expected = network(torch.from_numpy(x)).numpy().transpose(0, 2, 3, 1)
        diff = np.abs(runner.run(x.transpose(0, 2, 3, 1)) - expected).max()
        assert diff <= 2e-4, f"{name}: max abs difference {diff:.2e}"
    with pytest.raises(ValueError, match=r"exactly shape \(1, 224, 224, 3\)"):
        runner.run(np.zeros((1, 256, 256, 3), np.float32))


@pytest.mark.parametrize("modules,make", [
    (("onnxruntime",), lambda path: OnnxRuntimeRunner(path)),
    (("ai_edge_litert", "ai_edge_litert.interpreter"), lambda path: TFLiteRunner(path)),
    (("onnxscript",), lambda path: export_onnx(torch.nn.Identity(), path)),
    (("onnxruntime.quantization",), lambda path: OnnxRuntimeInt8Runner(path)),
])
def test_missing_optional_dependency_names_the_extra(modules, make, monkeypatch, tmp_path):
    for module in modules:
        monkeypatch.setitem(sys.modules, module, None)  # makes "import module" raise ImportError
    with pytest.raises(MissingDependencyError, match=r"pip install 'cartoonkit\[bench\]'") as info:
        make(tmp_path / "model")
    assert isinstance(info.value, CartoonkitError) and isinstance(info.value, ImportError)
    assert modules[-1] in str(info.value)


# ---- int8 and OpenVINO peers, each against PyTorch float32 on a real photo at PEER_SIZE -------------------------

PEER_SIZE = 128
REDUCED_PSNR_BAND = (25.0, 80.0)  # bf16 / int8 against float32: far from identical, far from broken


def _psnr(got: np.ndarray, expected: np.ndarray) -> float:
    from cartoonkit.bench.images import psnr
    from cartoonkit.transforms import network_to_rgb_float

    return psnr(network_to_rgb_float(torch.from_numpy(got)), network_to_rgb_float(torch.from_numpy(expected)))


@pytest.fixture(scope="module")
def peer_case(network, onnx_tools, shared_images, tmp_path_factory):
    """A fixed-shape export at PEER_SIZE (quick to export), a real photo, PyTorch's output, and calibration
    inputs: cartoonkit's calibration photos at the export's size."""
    from cartoonkit.quantize import calibration_inputs

    path = export_onnx(network, tmp_path_factory.mktemp("peers") / "fixed.onnx", height=PEER_SIZE, width=PEER_SIZE,
                       dynamic=False)
    x = _photo_bgr_nchw(shared_images / PORTRAIT, PEER_SIZE, PEER_SIZE)
    with torch.inference_mode():
        expected = network(torch.from_numpy(x)).numpy()
    return path, x, expected, calibration_inputs(PEER_SIZE)


@pytest.mark.parametrize("float_layers,name", [(("conv0", "conv8"), "onnxruntime-int8"),
                                               ((), "onnxruntime-int8-allconv")])
def test_onnxruntime_int8_runner_is_close_to_float32(peer_case, float_layers, name, capfd):
    import onnx

    path, x, expected, calibration = peer_case
    runner = OnnxRuntimeInt8Runner(path, float_layers=float_layers, calibration=calibration)
    assert isinstance(runner, ModelRunner) and runner.name == name and runner.path.is_file()
    quantized = onnx.load(str(runner.path))
    # the convolutions kept float read their float weights directly; every other one through DequantizeLinear
    float_convs = {n.input[1] for n in quantized.graph.node if n.op_type == "Conv" and n.input[1].endswith(".weight")}
    assert float_convs == {f"generator.{layer}.weight" for layer in float_layers}
    assert any(n.op_type == "QuantizeLinear" for n in quantized.graph.node)
    quality = _psnr(runner.run(x), expected)
    assert REDUCED_PSNR_BAND[0] <= quality <= REDUCED_PSNR_BAND[1], f"{name}: {quality:.1f} dB"
    assert capfd.readouterr().out == ""


@pytest.fixture(scope="module")
def openvino():
    return pytest.importorskip("openvino")


def test_openvino_fp32_runner_matches_pytorch(peer_case, openvino):
    path, x, expected, _ = peer_case
    runner = OpenVinoRunner(path, "fp32")
    assert isinstance(runner, ModelRunner) and runner.name == "openvino-fp32"
    assert np.abs(runner.run(x) - expected).max() <= EXPORT_TOLERANCE
    assert runner.inference_precision == "f32"
    with pytest.raises(ValueError, match="multiples of 4"):
        runner.run(x[..., :126, :])


def test_openvino_bf16_runner_reports_what_it_ran_and_is_close(peer_case, openvino):
    path, x, expected, _ = peer_case
    runner = OpenVinoRunner(path, "bf16")
    got = runner.run(x)
    assert runner.name == "openvino-bf16" and runner.inference_precision is not None
    if runner.inference_precision != "bf16":
        pytest.skip(f"this CPU ran the bf16 hint as {runner.inference_precision}")
    quality = _psnr(got, expected)
    assert REDUCED_PSNR_BAND[0] <= quality <= REDUCED_PSNR_BAND[1], f"{quality:.1f} dB"


def test_openvino_int8_runner_keeps_cartoonkits_float_layers(peer_case, openvino, capfd):
    pytest.importorskip("nncf")
    path, x, expected, calibration = peer_case
    runner = OpenVinoRunner(path, "int8", calibration=calibration)
    assert runner.name == "openvino-int8" and runner.float_layers == ("conv0", "conv8")
    weight_types = {}  # convolution -> element type of the constant its weights come from
    for op in runner.model.get_ordered_ops():
        if op.get_type_name() == "Convolution":
            weights = op.input_value(1).get_node()
            while weights.get_type_name() != "Constant" and weights.get_input_size():
                weights = weights.input_value(0).get_node()
            weight_types[op.get_friendly_name()] = str(weights.get_output_element_type(0))
    assert len(weight_types) == 18
    float_convs = [name for name, kind in weight_types.items() if "float32" in kind]
    assert len(float_convs) == 2 and all("int8" in k for n, k in weight_types.items() if n not in float_convs)
    assert float_convs == [list(weight_types)[0], list(weight_types)[-2]]  # conv0 and conv8 (conv9 is last)
    quality = _psnr(runner.run(x), expected)
    assert REDUCED_PSNR_BAND[0] <= quality <= REDUCED_PSNR_BAND[1], f"{quality:.1f} dB"
    capfd.readouterr()  # NNCF prints progress bars; what matters is that nothing fails


def test_openvino_export_writes_float32_ir_that_matches_pytorch(network, peer_case, openvino, tmp_path):
    _, x, _, _ = peer_case
    path = export_openvino(network, tmp_path / "ir" / "cartoon.xml", dynamic=False, height=PEER_SIZE,
                           width=PEER_SIZE)
    assert sorted(p.name for p in path.parent.iterdir()) == ["cartoon.bin", "cartoon.xml"]
    assert (tmp_path / "ir" / "cartoon.bin").stat().st_size > 4 * 1_000_000  # ~1.5 M float32 weights, not fp16
    assert verify_openvino(path, network, x) <= EXPORT_TOLERANCE
    with pytest.raises(ConfigError, match="NAME.xml"):
        export_openvino(network, tmp_path / "cartoon.onnx")


@pytest.mark.parametrize("modules,make", [
    (("openvino",), lambda onnx_path, tmp: OpenVinoRunner(onnx_path)),
    (("nncf",), lambda onnx_path, tmp: OpenVinoRunner(onnx_path, "int8")),
    (("openvino",), lambda onnx_path, tmp: export_openvino(torch.nn.Identity(), tmp / "m.xml")),
])
def test_missing_openvino_names_its_extra(modules, make, monkeypatch, tmp_path, peer_case):
    if modules == ("nncf",):
        pytest.importorskip("openvino")
    for module in modules:
        monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'cartoonkit\[openvino\]'"):
        make(peer_case[0], tmp_path)


def test_bench_peers_fills_psnr_and_skips_a_missing_package_with_one_line(network, onnx_tools, monkeypatch):
    """``cartoonkit bench --peers`` at 64 px, with OpenVINO 'uninstalled': the ONNX Runtime rows (float32 and
    both int8) carry a PSNR against float32, and each OpenVINO peer is one line naming its extra."""
    from cartoonkit import export
    from cartoonkit.bench.run import bench_peers
    from cartoonkit.imageio import read_image
    from cartoonkit.samples import sample_photos

    # A fixed 64x64 export instead of the dynamic one: the same graph for this size, in a third of the time.
    fixed = export.export_onnx
    monkeypatch.setattr(export, "export_onnx",
                        lambda net, path, **_: fixed(net, path, height=64, width=64, dynamic=False))
    monkeypatch.setattr("cartoonkit.quantize.calibration_inputs",
                        lambda size=64: [torch.zeros(1, 3, 64, 64), torch.rand(1, 3, 64, 64) * 2 - 1])
    monkeypatch.setitem(sys.modules, "openvino", None)
    photo = read_image(sample_photos()[0]).rgb
    from cartoonkit.bench.images import square_photo
    from cartoonkit.transforms import network_to_rgb_float, rgb_uint8_to_network

    with torch.inference_mode():
        reference = network_to_rgb_float(network(rgb_uint8_to_network(square_photo(photo, 64)[None])))
    lines = []
    rows, checks = bench_peers("whitebox", photo, [64], 1, {64: reference}, None, echo=lines.append)
    assert [r.variant for r in rows] == ["onnxruntime-cpu-fp32", "onnxruntime-int8", "onnxruntime-int8-allconv"]
    assert rows[0].psnr_vs_fp32 > 100 and all(15 < r.psnr_vs_fp32 < 80 for r in rows[1:])
    assert checks["onnx_max_abs_diff_64"] <= EXPORT_TOLERANCE
    assert len(lines) == 3 and all("OpenVINO" in line and "cartoonkit[openvino]" in line for line in lines)
