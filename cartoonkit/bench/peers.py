"""Benchmark peers: the other ways this network is run, with one small interface.

Every runner has a ``name``, the ``layout`` of its input (``"NCHW"`` or ``"NHWC"``) and
``run(x: np.ndarray) -> np.ndarray``, which takes float32 BGR in ``[-1, 1]`` and returns the
network output in the same layout, BGR in ``~[-1, 1]``. Only the model runs inside ``run``:
converting the photo to that layout is the caller's job, so rows of a benchmark compare the
engines, not their preprocessing.

* :class:`NaivePipeline`: PyTorch as a typical demo script deploys it (float32 eager, contiguous
  NCHW, batch 1) with PIL decoding and encoding around it (:meth:`NaivePipeline.process_file`).
* :class:`OnnxRuntimeRunner`: ONNX Runtime on the model :func:`cartoonkit.export.export_onnx` wrote.
* :class:`OnnxRuntimeInt8Runner`: ONNX Runtime on that model statically quantized to int8
  (:func:`quantize_onnx_int8`: QDQ, per-channel weights, calibrated on cartoonkit's own calibration
  photos, the guided-filter head left float32 as cartoonkit leaves it).
* :class:`OpenVinoRunner`: OpenVINO's CPU plugin on the same ONNX model, in float32, bfloat16
  (``INFERENCE_PRECISION_HINT``) or int8 (NNCF post-training quantization, same calibration photos).
* :class:`TFLiteRunner`: the TFLite interpreter on the shipped ``.tflite`` file (fixed 1x224x224x3),
  the mobile reference.
* :class:`TensorRTRunner` (CUDA only): torch-tensorrt's dynamo frontend on the network, the generator in float16
  and the guided-filter head in float32 as cartoonkit runs them; the peer to beat on a GPU. Its
  :meth:`~TensorRTRunner.forward` takes a tensor already on the GPU, so its rows time the network, not host copies.

``onnxruntime``, ``openvino``/``nncf``, ``ai_edge_litert`` and ``torch_tensorrt`` are imported when a runner is
created; when missing, a :class:`~cartoonkit.errors.MissingDependencyError` names the extra that installs them
(``bench``, ``openvino``, ``tensorrt``).

int8 peers and cartoonkit's int8 (:mod:`cartoonkit.quantize`) are calibrated on the same photos
(:func:`cartoonkit.quantize.calibration_inputs`). ``float_layers`` names the convolutions kept out of int8:
by default :data:`cartoonkit.quantize.FLOAT_LAYERS` (``conv0`` and ``conv8``), as cartoonkit keeps them;
``float_layers=()`` quantizes every convolution of the generator. The guided-filter head is never quantized
(its ``var + eps`` cancels catastrophically in low precision; quantizing it in ONNX Runtime costs ~8 dB).
"""

from __future__ import annotations

import contextlib
import inspect
import io
import logging
import os
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from PIL import Image

from ..config import DEFAULT_MODEL
from ..errors import ConfigError
from ..export import BENCH_EXTRA, INPUT_NAME, OPENVINO_EXTRA, float32_cpu_copy
from ..extras import require
from ..network import SIZE_MULTIPLE, CartoonNetwork
from ..quantize import FLOAT_LAYERS
from ..transforms import output_size

__all__ = ["NAIVE_CROP_MULTIPLE", "TENSORRT_EXTRA", "ModelRunner", "NaivePipeline", "OnnxRuntimeInt8Runner",
           "OnnxRuntimeRunner", "OpenVinoRunner", "TFLiteRunner", "TensorRTRunner", "quantize_onnx_int8"]

TENSORRT_EXTRA = "tensorrt"
"""The pip extra of :class:`TensorRTRunner`: ``pip install 'cartoonkit[tensorrt]'`` (torch-tensorrt)."""

NAIVE_CROP_MULTIPLE = 8
"""White-box Cartoonization's ``resize_crop`` crops height and width down to multiples of 8."""


@runtime_checkable
class ModelRunner(Protocol):
    """What every peer offers: a name, an input layout and ``run``."""

    name: str
    layout: str

    def run(self, x: np.ndarray) -> np.ndarray: ...


def _check_nchw(x: np.ndarray) -> np.ndarray:
    """float32 contiguous ``(N, 3, H, W)`` with ``H``, ``W`` multiples of 4, else ``ValueError``."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"expected a (N, 3, H, W) array, got shape {x.shape}")
    if x.shape[2] % SIZE_MULTIPLE or x.shape[3] % SIZE_MULTIPLE:
        raise ValueError(f"height and width must be multiples of {SIZE_MULTIPLE}, got {x.shape[2]}x{x.shape[3]}")
    return x


class NaivePipeline:
    """The pipeline as commonly deployed: what a demo script around the PyTorch port does.

    :meth:`process_file`, step by step, with nothing cached between calls but the network:

    1. ``PIL.Image.open(src).convert("RGB")``; EXIF orientation is *not* applied (demo scripts
       do not), which :class:`~cartoonkit.Cartoonizer` does.
    2. Resize with PIL so the long side is ``resolution``, aspect ratio kept (rounded as
       :func:`cartoonkit.transforms.output_size`), with PIL's default filter for ``resize``
       (bicubic; cartoonkit uses antialiased bilinear).
    3. Crop height and width *down* to multiples of 8 from the top-left, like White-box
       Cartoonization's ``resize_crop`` (``image[:h//8*8, :w//8*8]``), so the output can be up
       to 7 pixels smaller than ``resolution`` in each axis. The original also shrinks the short
       side to 720 first; here the long side is the benchmark's ``resolution`` instead, the
       setting every peer shares.
    4. RGB -> BGR, ``x / 127.5 - 1``, ``torch.from_numpy(...).permute(2, 0, 1)[None].contiguous()``
       (contiguous NCHW, no channels-last), moved to ``device``.
    5. :class:`CartoonNetwork` in float32, eager, batch 1, under ``torch.no_grad()``.
    6. ``(y + 1) * 127.5``, ``np.clip(0, 255).astype(np.uint8)`` (truncation, as the original),
       BGR -> RGB, ``PIL.Image.fromarray(...).save(dst)`` with PIL's defaults for the extension.

    The output is the full-strength cartoon (style weight 1), not cartoonkit's default blend.
    """

    name = "naive-pytorch-eager-fp32"
    layout = "NCHW"

    def __init__(self, network: CartoonNetwork, device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.network = float32_cpu_copy(network).to(self.device)

    @classmethod
    def from_model(cls, model: str = DEFAULT_MODEL, device: str | torch.device = "cpu", *,
                   models_dir: str | os.PathLike | None = None) -> NaivePipeline:
        """Load an installed (or installable) model by name, as :func:`cartoonkit.weights.load_network`."""
        from ..weights import load_network

        network, _ = load_network(model, models_dir=Path(models_dir) if models_dir else None)
        return cls(network, device)

    @staticmethod
    def load_photo(src: str | os.PathLike, resolution: int) -> np.ndarray:
        """Steps 1-3: decode, resize (long side ``resolution``), crop to multiples of 8; ``(H, W, 3)`` RGB uint8."""
        image = Image.open(src).convert("RGB")
        width, height = image.size
        new_h, new_w = output_size(height, width, resolution)
        image = image.resize((new_w, new_h), Image.Resampling.BICUBIC)
        h, w = new_h // NAIVE_CROP_MULTIPLE * NAIVE_CROP_MULTIPLE, new_w // NAIVE_CROP_MULTIPLE * NAIVE_CROP_MULTIPLE
        if h == 0 or w == 0:
            raise ValueError(f"{src}: {new_w}x{new_h} after resizing, too small to crop to multiples of 8")
        return np.asarray(image)[:h, :w]

    def to_network(self, rgb: np.ndarray) -> torch.Tensor:
        """Step 4: ``(H, W, 3)`` RGB uint8 -> ``(1, 3, H, W)`` float32 BGR in ``[-1, 1]`` on the device."""
        bgr = rgb[:, :, ::-1].astype(np.float32) / 127.5 - 1
        return torch.from_numpy(bgr).permute(2, 0, 1)[None].contiguous().to(self.device)

    def model_only(self, photo_bgr: torch.Tensor) -> torch.Tensor:
        """Step 5: the network alone on a ``(N, 3, H, W)`` float32 tensor already on the device."""
        with torch.no_grad():
            return self.network(photo_bgr)

    @staticmethod
    def to_uint8_rgb(cartoon_bgr: torch.Tensor) -> np.ndarray:
        """Step 6 without the save: network output ``(1, 3, H, W)`` -> ``(H, W, 3)`` RGB uint8."""
        out = (cartoon_bgr[0].permute(1, 2, 0).cpu().numpy() + 1) * 127.5
        return np.ascontiguousarray(np.clip(out, 0, 255).astype(np.uint8)[:, :, ::-1])

    def cartoonize(self, src: str | os.PathLike, resolution: int) -> np.ndarray:
        """Steps 1-6 without the save: the ``(H, W, 3)`` RGB uint8 cartoon."""
        return self.to_uint8_rgb(self.model_only(self.to_network(self.load_photo(src, resolution))))

    def process_file(self, src: str | os.PathLike, dst: str | os.PathLike, resolution: int) -> tuple[int, int]:
        """Steps 1-6: read ``src``, write the cartoon to ``dst`` (format from its extension); ``(H, W)`` written."""
        rgb = self.cartoonize(src, resolution)
        Image.fromarray(rgb).save(dst)
        return rgb.shape[0], rgb.shape[1]

    def run(self, x: np.ndarray) -> np.ndarray:
        """:class:`ModelRunner` form of :meth:`model_only`: ``(N, 3, H, W)`` float32 numpy in and out."""
        x = _check_nchw(x)
        return self.model_only(torch.from_numpy(x).to(self.device)).cpu().numpy()


class OnnxRuntimeRunner:
    """ONNX Runtime on an exported model (see :func:`cartoonkit.export.export_onnx`).

    ``providers=None``: ``CUDAExecutionProvider`` first when this onnxruntime build has it (the
    ``onnxruntime-gpu`` package; the plain ``onnxruntime`` wheel is CPU-only), then the CPU
    provider. All graph optimisations are on (``ORT_ENABLE_ALL``, which on the CPU includes the
    NCHWc layout transformation for the convolutions) and ``intra_op_num_threads`` is
    ``torch.get_num_threads()``, so it uses the same cores as the PyTorch rows.

    ``run`` takes and returns numpy arrays on the host, so with the CUDA provider each call also
    copies the input to the GPU and the output back, as a numpy-based deployment does.
    """

    layout = "NCHW"

    def __init__(self, onnx_path: str | os.PathLike, providers: list[str] | None = None,
                 threads: int | None = None):
        ort = require("onnxruntime", "The ONNX Runtime benchmark peer", BENCH_EXTRA)
        available = ort.get_available_providers()
        if providers is None:
            providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        missing = [p for p in providers if p not in available]
        if missing:
            raise ValueError(f"ONNX Runtime providers {missing} are not available here; available: {available}")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or torch.get_num_threads()
        self.path = Path(onnx_path)
        self.session = ort.InferenceSession(os.fspath(onnx_path), options, providers=providers)
        self.providers = self.session.get_providers()
        self.input_name = self.session.get_inputs()[0].name
        provider = self.providers[0].removesuffix("ExecutionProvider").lower()
        self.name = f"onnxruntime-{provider}-fp32"

    def run(self, x: np.ndarray) -> np.ndarray:
        """``(N, 3, H, W)`` float32 BGR in ``[-1, 1]`` -> the network output, same shape."""
        return self.session.run(None, {self.input_name: _check_nchw(x)})[0]


def _weight_name(layer: str) -> str:
    """The initializer name the ONNX export gives a generator convolution's weight (``conv0`` -> ...)."""
    return f"generator.{layer}.weight"


def _calibration_arrays(calibration: list | None) -> list[np.ndarray]:
    from ..quantize import calibration_inputs

    inputs = calibration_inputs() if calibration is None else calibration
    return [np.ascontiguousarray(np.asarray(x), dtype=np.float32) for x in inputs]


def quantize_onnx_int8(src: str | os.PathLike, dst: str | os.PathLike, calibration: list | None = None,
                       float_layers: tuple[str, ...] = FLOAT_LAYERS) -> Path:
    """Static int8 quantization of an exported model with ``onnxruntime.quantization.quantize_static``.

    QDQ format, int8 weights per output channel, uint8 activations per tensor (MinMax calibration over
    ``calibration``, by default cartoonkit's calibration photos at 384 px; for a fixed-shape export pass
    inputs of its shape). Every node of the generator is quantized except the convolutions named in
    ``float_layers``; the guided-filter head (every node that the last convolution does not depend on)
    stays float32.
    """
    onnx = require("onnx", "int8 quantization for ONNX Runtime", BENCH_EXTRA)
    quantization = require("onnxruntime.quantization", "int8 quantization for ONNX Runtime", BENCH_EXTRA)
    model = onnx.load(os.fspath(src))
    nodes = list(model.graph.node)
    conv_by_weight = {n.input[1]: n for n in nodes if n.op_type == "Conv"}
    last = conv_by_weight.get(_weight_name("conv9"))
    unknown = [name for name in float_layers if _weight_name(name) not in conv_by_weight]
    if last is None or unknown:
        raise ValueError(f"{src}: not a cartoonkit export (no Conv for {unknown or ['conv9']})")
    producer = {out: n for n in nodes for out in n.output}
    generator, stack = set(), [last]
    while stack:  # the generator: everything the last convolution depends on
        node = stack.pop()
        if node.name not in generator:
            generator.add(node.name)
            stack += [producer[i] for i in node.input if i in producer]
    excluded = [n.name for n in nodes if n.name not in generator]
    excluded += [conv_by_weight[_weight_name(name)].name for name in float_layers]
    arrays = _calibration_arrays(calibration)

    class Reader(quantization.CalibrationDataReader):
        def __init__(self):
            self._batches = iter([{INPUT_NAME: x} for x in arrays])

        def get_next(self):
            return next(self._batches, None)

    dst = Path(dst)
    root = logging.getLogger()
    root.addFilter(_no_preprocessing_advice)  # quantize_static logs it on the root logger, every time
    try:
        quantization.quantize_static(os.fspath(src), os.fspath(dst), Reader(),
                                     quant_format=quantization.QuantFormat.QDQ, per_channel=True,
                                     activation_type=quantization.QuantType.QUInt8,
                                     weight_type=quantization.QuantType.QInt8, nodes_to_exclude=excluded,
                                     calibrate_method=quantization.CalibrationMethod.MinMax)
    finally:
        root.removeFilter(_no_preprocessing_advice)
    return dst


def _no_preprocessing_advice(record: logging.LogRecord) -> bool:
    """Drops ONNX Runtime's "Please consider (to run) pre-processing before quantization" warnings: the
    export already has its shapes inferred, and the advice is about models from other sources."""
    return "pre-processing before quantization" not in str(record.msg)


def _int8_suffix(float_layers: tuple[str, ...]) -> str:
    """Row-name suffix: none for cartoonkit's choice of float layers, ``-allconv`` when every conv is int8."""
    if tuple(float_layers) == FLOAT_LAYERS:
        return ""
    return "-allconv" if not float_layers else "-float-" + "-".join(float_layers)


class OnnxRuntimeInt8Runner(OnnxRuntimeRunner):
    """ONNX Runtime (CPU provider) on the int8 model :func:`quantize_onnx_int8` makes from ``onnx_path``.

    The quantized model is written beside ``onnx_path`` (``<stem>-int8<suffix>.onnx``, kept as
    :attr:`path`). Named ``onnxruntime-int8`` with cartoonkit's float layers, ``onnxruntime-int8-allconv``
    with ``float_layers=()``.
    """

    def __init__(self, onnx_path: str | os.PathLike, float_layers: tuple[str, ...] = FLOAT_LAYERS,
                 calibration: list | None = None, threads: int | None = None):
        require("onnxruntime", "The ONNX Runtime int8 benchmark peer", BENCH_EXTRA)
        src = Path(onnx_path)
        suffix = _int8_suffix(float_layers)
        quantized = quantize_onnx_int8(src, src.with_name(f"{src.stem}-int8{suffix}.onnx"), calibration,
                                       float_layers)
        super().__init__(quantized, providers=["CPUExecutionProvider"], threads=threads)
        self.float_layers = tuple(float_layers)
        self.name = f"onnxruntime-int8{suffix}"


OPENVINO_PRECISIONS = ("fp32", "bf16", "int8")


class OpenVinoRunner:
    """OpenVINO's CPU plugin on the exported ONNX model (or an OpenVINO IR ``.xml``) in one precision.

    * ``"fp32"``: ``INFERENCE_PRECISION_HINT`` ``f32``, so nothing is down-cast.
    * ``"bf16"``: hint ``bf16``. On a CPU without native bfloat16 the plugin may run float32 instead;
      :attr:`inference_precision` is what the compiled model reports it actually uses.
    * ``"int8"``: ``nncf.quantize`` (default preset: symmetric int8 weights per channel, activations per
      tensor, fast bias correction) calibrated on cartoonkit's calibration photos, with the guided-filter
      head and the convolutions in ``float_layers`` in the ignored scope; the remaining float work runs in
      the plugin's default precision (bfloat16 where the CPU has it, reported in :attr:`inference_precision`).

    :attr:`inference_precision` (``"f32"``, ``"bf16"``, ...) is set by the first :meth:`run`.

    The model is compiled once per input shape (static shapes, ``PERFORMANCE_HINT`` ``LATENCY``,
    ``INFERENCE_NUM_THREADS`` = ``torch.get_num_threads()``), as cartoonkit's compiled engines are.
    """

    layout = "NCHW"

    def __init__(self, model_path: str | os.PathLike, precision: str = "fp32", *,
                 float_layers: tuple[str, ...] = FLOAT_LAYERS, calibration: list | None = None,
                 threads: int | None = None):
        if precision not in OPENVINO_PRECISIONS:
            raise ValueError(f"precision {precision!r}: one of {OPENVINO_PRECISIONS}")
        ov = require("openvino", "The OpenVINO benchmark peer", OPENVINO_EXTRA)
        self.path = Path(model_path)
        self.precision = precision
        self.core = ov.Core()
        model = self.core.read_model(os.fspath(model_path))
        self.name = f"openvino-{precision}"
        if precision == "int8":
            nncf = require("nncf", "The OpenVINO int8 benchmark peer", OPENVINO_EXTRA)
            names = _openvino_ignored(model, float_layers)
            arrays = _calibration_arrays(calibration)
            # NNCF logs to stdout at INFO and draws progress bars there; neither belongs in a benchmark table.
            nncf_log = logging.getLogger("nncf")
            level = nncf_log.level
            nncf_log.setLevel(logging.WARNING)
            try:
                with contextlib.redirect_stdout(io.StringIO()):
                    model = nncf.quantize(model, nncf.Dataset(arrays), subset_size=len(arrays),
                                          ignored_scope=nncf.IgnoredScope(names=names, validate=False))
            finally:
                nncf_log.setLevel(level)
            self.float_layers = tuple(float_layers)
            self.name += _int8_suffix(float_layers)
        self.model = model
        self.config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads or torch.get_num_threads()}
        if precision != "int8":
            self.config["INFERENCE_PRECISION_HINT"] = {"fp32": "f32", "bf16": "bf16"}[precision]
        self._requests: dict[tuple[int, ...], object] = {}
        self.inference_precision: str | None = None

    def _request(self, shape: tuple[int, ...]):
        if shape not in self._requests:
            model = self.model.clone()
            model.reshape({0: list(shape)})
            compiled = self.core.compile_model(model, "CPU", self.config)
            hint = compiled.get_property("INFERENCE_PRECISION_HINT")  # an openvino.Type: "f32", "bf16", ...
            self.inference_precision = hint.get_type_name() if hasattr(hint, "get_type_name") else str(hint)
            self._requests[shape] = compiled.create_infer_request()
        return self._requests[shape]

    def run(self, x: np.ndarray) -> np.ndarray:
        """``(N, 3, H, W)`` float32 BGR in ``[-1, 1]`` -> the network output, same shape."""
        x = _check_nchw(x)
        return self._request(tuple(x.shape)).infer({0: x})[0].copy()


def _openvino_ignored(model, float_layers: tuple[str, ...]) -> list[str]:
    """Names of the ops NNCF must leave float: the guided-filter head and the convolutions in ``float_layers``."""

    def weight_source(op) -> str:
        node = op.input_value(1).get_node()
        while node.get_type_name() != "Constant" and node.get_input_size():
            node = node.input_value(0).get_node()
        return node.get_friendly_name()

    ops = model.get_ordered_ops()
    convs = {weight_source(op): op for op in ops if op.get_type_name() == "Convolution"}
    unknown = [name for name in (*float_layers, "conv9") if _weight_name(name) not in convs]
    if unknown:
        raise ValueError(f"not a cartoonkit export: no convolution for {unknown}")
    last = convs[_weight_name("conv9")]
    ends = [t.get_node() for t in last.output(0).get_target_inputs()]  # conv9's bias Add
    generator, stack = set(), [last, *ends]
    while stack:
        node = stack.pop()
        if node.get_friendly_name() not in generator:
            generator.add(node.get_friendly_name())
            stack += [v.get_node() for v in node.input_values()]
    head = [op.get_friendly_name() for op in ops if op.get_friendly_name() not in generator
            and op.get_type_name() not in ("Parameter", "Result", "Constant")]
    return head + [convs[_weight_name(name)].get_friendly_name() for name in float_layers]


class TFLiteRunner:
    """The TFLite interpreter (``ai_edge_litert``) on the shipped ``.tflite`` file, on the CPU.

    The file has a fixed ``1x224x224x3`` NHWC float32 input (BGR in ``[-1, 1]``, like the PyTorch
    network) and runs float16 weights dequantised to float32 (XNNPACK delegate by default);
    ``num_threads`` is ``torch.get_num_threads()``.
    """

    name = "tflite-cpu"
    layout = "NHWC"

    def __init__(self, tflite_path: str | os.PathLike, threads: int | None = None):
        litert = require("ai_edge_litert.interpreter", "The TFLite benchmark peer", BENCH_EXTRA)
        self.path = Path(tflite_path)
        self.interpreter = litert.Interpreter(model_path=os.fspath(tflite_path),
                                              num_threads=threads or torch.get_num_threads())
        self.interpreter.allocate_tensors()
        inp = self.interpreter.get_input_details()[0]
        self._input_index = inp["index"]
        self._output_index = self.interpreter.get_output_details()[0]["index"]
        self.input_shape: tuple[int, ...] = tuple(int(d) for d in inp["shape"])

    def run(self, x: np.ndarray) -> np.ndarray:
        """``(1, 224, 224, 3)`` float32 BGR in ``[-1, 1]`` -> the cartoon, same shape; any other shape raises."""
        x = np.asarray(x)
        if tuple(x.shape) != self.input_shape:
            raise ValueError(f"the TFLite model takes exactly shape {self.input_shape} (NHWC), got {tuple(x.shape)}; "
                             "resize the photo to that size first")
        self.interpreter.set_tensor(self._input_index, np.ascontiguousarray(x, dtype=np.float32))
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self._output_index)



class TensorRTRunner:
    """torch-tensorrt on the network, float16, on a CUDA device: the GPU peer to beat.

    A copy of the float32 network from the weight files has its generator cast to float16 (the guided-filter head
    stays float32, as in cartoonkit's engine, whose ``var + eps`` cancels in float16) and is compiled with
    ``torch_tensorrt.compile(..., ir="dynamo")``, once per input shape (static shapes, as cartoonkit's compiled
    engines), with explicit typing where this torch-tensorrt has it (``use_explicit_typing``: TensorRT keeps the
    module's own dtypes), else ``enabled_precisions={float16, float32}`` (older releases: TensorRT picks per layer).
    :meth:`forward` takes a float32 BGR ``(N, 3, H, W)`` tensor on the device; :meth:`run` is the
    :class:`ModelRunner` form, numpy in and out through the host.
    """

    name = "tensorrt-fp16"
    layout = "NCHW"
    precision = "float16"

    def __init__(self, network: CartoonNetwork, device: str | torch.device = "cuda"):
        self.device = torch.device(device)
        if self.device.type != "cuda":
            raise ConfigError(f"the TensorRT peer runs on a CUDA device, not {self.device}")
        self.trt = require("torch_tensorrt", "The TensorRT benchmark peer", TENSORRT_EXTRA)
        network = float32_cpu_copy(network)  # a copy: the caller's network keeps its dtype and device
        network.generator.half()
        self.network = network.to(self.device)
        parameters = inspect.signature(self.trt.dynamo.compile).parameters
        self.settings: dict = ({"use_explicit_typing": True} if "use_explicit_typing" in parameters
                               else {"enabled_precisions": {torch.float16, torch.float32}})
        self._compiled: dict[tuple[int, ...], object] = {}

    def compiled(self, shape: tuple[int, ...]):
        """The TensorRT module for input ``shape`` (compiled on first use)."""
        if shape not in self._compiled:
            example = torch.zeros(shape, device=self.device)
            with torch.inference_mode(False), torch.no_grad():
                self._compiled[shape] = self.trt.compile(self.network, ir="dynamo", inputs=[example], **self.settings)
        return self._compiled[shape]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """float32 ``(N, 3, H, W)`` BGR in ``[-1, 1]`` on the device -> the network output, float32, same shape."""
        with torch.no_grad():
            out = self.compiled(tuple(x.shape))(x)
        return (out[0] if isinstance(out, (list, tuple)) else out).float()

    def run(self, x: np.ndarray) -> np.ndarray:
        """``(N, 3, H, W)`` float32 numpy -> the output, numpy (copies through the host)."""
        return self.forward(torch.from_numpy(_check_nchw(x)).to(self.device)).cpu().numpy()
