"""Export the float32 :class:`~cartoonkit.network.CartoonNetwork` to ONNX and check the export.

The ONNX model is a benchmark peer (ONNX Runtime on the project's own network) and a way to
deploy the network without PyTorch. It is the *whole* network, generator plus guided-filter
head, always in float32:

* input ``photo_bgr``: ``(N, 3, H, W)`` float32, BGR in ``[-1, 1]``, ``H`` and ``W`` multiples of 4;
* output ``cartoon_bgr``: ``(N, 3, H, W)`` float32, BGR in ``~[-1, 1]``.

Exporter: ``torch.onnx.export(..., dynamo=True)``, torch 2.14's default (``torch.export`` +
``onnxscript``; needs the ``onnx`` and ``onnxscript`` packages). With ``dynamic=True`` the batch
axis is free and height and width are declared as ``4 * height_div4`` and ``4 * width_div4``,
so the graph carries no trace-time sizes: the TF-``SAME`` padding of the stride-2 layers and the
legacy up-sampler's ``cat``/``stack``/``flatten`` are computed from the input's shape. Checked in
``tests/test_peers.py``: traced at 64x64, the model matches PyTorch to ~1e-6 at 96x128 and with
batch 2 at other sizes. Declaring the axes as multiples of 4 (not as free ``Dim``s) is what the
network requires anyway and roughly halves the export time, which is spent in
``torch.export``'s symbolic shape reasoning (several seconds, vs ~1.5 s for a fixed shape).

The dynamo exporter writes opset 18 or later: it has no implementations below 18, and the down
conversion to 17 fails on ``Pad``. ``dynamo=False`` selects the legacy TorchScript exporter
(deprecated since torch 2.9 but present in 2.14), which writes opset 17, exports in under a
second, and also gives a correct dynamic graph for this network (its trace-time warnings about
``same_padding`` and the input check are harmless: for sizes that are multiples of 4 the
stride-2 padding is always ``(0, 1)``). Both graphs run at the same speed in ONNX Runtime.

Neither graph checks its input: a size that is not a multiple of 4 fails inside ONNX Runtime or
gives a wrong shape. :class:`cartoonkit.bench.peers.OnnxRuntimeRunner` checks before running.

OpenVINO IR (:func:`export_openvino`, ``cartoonkit export --format openvino``) is converted from this
ONNX model with ``openvino.convert_model`` and saved with float32 weights; :func:`verify_openvino`
checks it in OpenVINO's CPU plugin with ``INFERENCE_PRECISION_HINT`` ``f32`` (~3e-6 from PyTorch).
Needs the ``openvino`` extra as well as ``bench`` (for the ONNX step).
"""

from __future__ import annotations

import copy
import logging
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from .errors import ConfigError, MissingDependencyError
from .extras import require
from .network import SIZE_MULTIPLE, CartoonNetwork

INPUT_NAME = "photo_bgr"
OUTPUT_NAME = "cartoon_bgr"
DEFAULT_TRACE_SIZE = 64
DYNAMO_MIN_OPSET = 18
BENCH_EXTRA = "bench"
OPENVINO_EXTRA = "openvino"

__all__ = ["INPUT_NAME", "OUTPUT_NAME", "MissingDependencyError", "export_onnx", "export_openvino", "require",
           "verify_onnx", "verify_openvino"]


def float32_cpu_copy(network: CartoonNetwork) -> CartoonNetwork:
    """A float32, contiguous-layout, CPU, eval-mode copy; the caller's network is left as it is.

    The engine casts the generator to bfloat16/float16 and to channels-last in place; such a network
    is cast back here, but its weights keep their reduced-precision rounding (~6e-3 max abs
    difference after bfloat16). Export and compare the network from
    :func:`cartoonkit.weights.load_network`, not an engine's.
    """
    net = copy.deepcopy(network).cpu().float().to(memory_format=torch.contiguous_format)
    return net.eval().requires_grad_(False)


def _check_size(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0 or value % SIZE_MULTIPLE:
        raise ConfigError(f"{name}={value!r}: must be a positive multiple of {SIZE_MULTIPLE}")
    return value


def export_onnx(network: CartoonNetwork, path: str | os.PathLike, *, height: int | None = None,
                width: int | None = None, opset: int = DYNAMO_MIN_OPSET, dynamic: bool = True,
                dynamo: bool = True) -> Path:
    """Write ``network`` (as float32 on the CPU) to ``path`` as ONNX and return the path.

    ``dynamic=True``: batch, height and width are free (height and width multiples of 4);
    ``height``/``width`` only set the trace size (default 64). ``dynamic=False``: the model has the
    fixed shape ``(1, 3, height, width)`` and both must be given. ``dynamo`` picks the exporter
    (see the module docstring); the dynamo exporter needs ``opset >= 18``.
    """
    if dynamic:
        height = DEFAULT_TRACE_SIZE if height is None else height
        width = DEFAULT_TRACE_SIZE if width is None else width
    elif height is None or width is None:
        raise ConfigError("dynamic=False exports one fixed shape: give both height and width")
    _check_size("height", height)
    _check_size("width", width)
    if dynamo and opset < DYNAMO_MIN_OPSET:
        raise ConfigError(f"opset={opset}: the dynamo exporter writes opset {DYNAMO_MIN_OPSET} or later; "
                          "use dynamo=False (legacy TorchScript exporter) for an older opset")
    require("onnx", "ONNX export", BENCH_EXTRA)
    if dynamo:
        require("onnxscript", "ONNX export with torch's dynamo exporter", BENCH_EXTRA)

    net = float32_cpu_copy(network)
    # Batch 2 when dynamic: torch.export specialises a dimension whose example size is 0 or 1.
    example = torch.zeros(2 if dynamic else 1, 3, height, width)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if dynamo:
        _export_dynamo(net, example, path, opset, dynamic)
    else:
        _export_torchscript(net, example, path, opset, dynamic)
    return path


def _export_dynamo(net: CartoonNetwork, example: torch.Tensor, path: Path, opset: int, dynamic: bool) -> None:
    dynamic_shapes = None
    if dynamic:
        dim = torch.export.Dim
        dynamic_shapes = ({0: dim("batch", min=1),
                           2: SIZE_MULTIPLE * dim("height_div4", min=1),
                           3: SIZE_MULTIPLE * dim("width_div4", min=1)},)
    # The exporter's optimisers log every deduplicated constant and skipped fold at INFO ("Replaced initializer
    # ...", "Skipping constant folding ..."), dozens of lines that the CLI's INFO logging would show.
    loggers = [logging.getLogger(name) for name in ("onnx_ir", "onnxscript")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        torch.onnx.export(net, (example,), str(path), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          opset_version=opset, dynamic_shapes=dynamic_shapes, dynamo=True, external_data=False,
                          verbose=False)
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _export_torchscript(net: CartoonNetwork, example: torch.Tensor, path: Path, opset: int, dynamic: bool) -> None:
    axes = {0: "batch", 2: "height", 3: "width"}
    dynamic_axes = {INPUT_NAME: axes, OUTPUT_NAME: axes} if dynamic else None
    with warnings.catch_warnings():
        # The deprecation notice, and trace warnings about the input check and ``same_padding``'s
        # ``max``, which are constant for every valid (multiple-of-4) size: see the module docstring.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(net, (example,), str(path), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          opset_version=opset, dynamic_axes=dynamic_axes, dynamo=False)


def _as_float32_numpy(x: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().float().numpy()
    return np.ascontiguousarray(x, dtype=np.float32)


def verify_onnx(path: str | os.PathLike, network: CartoonNetwork,
                inputs: torch.Tensor | np.ndarray | Sequence[torch.Tensor | np.ndarray]) -> float:
    """Max abs difference between ONNX Runtime (CPU provider) and PyTorch float32 over ``inputs``.

    ``inputs`` is one ``(N, 3, H, W)`` batch (BGR in ``[-1, 1]``) or a sequence of them, possibly of
    different sizes (which is how a dynamic export is checked).
    """
    ort = require("onnxruntime", "Checking an ONNX export", BENCH_EXTRA)
    session = ort.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    return _max_difference(lambda x: session.run(None, {input_name: x})[0], network, inputs, "ONNX")


def _max_difference(run, network: CartoonNetwork, inputs, runtime: str) -> float:
    """Max abs difference between ``run(x)`` (another runtime, numpy in and out) and PyTorch float32 over
    ``inputs`` (one batch or a sequence of them); a shape that differs is an error, not a difference."""
    batches = [inputs] if isinstance(inputs, (torch.Tensor, np.ndarray)) else list(inputs)
    if not batches:
        raise ValueError(f"checking an {runtime} export needs at least one input batch")
    net = float32_cpu_copy(network)
    worst = 0.0
    for batch in batches:
        x = _as_float32_numpy(batch)
        with torch.inference_mode():
            expected = net(torch.from_numpy(x)).numpy()
        got = run(x)
        if got.shape != expected.shape:
            raise ValueError(f"{runtime} output shape {got.shape} differs from PyTorch's {expected.shape}")
        worst = max(worst, float(np.abs(got - expected).max()))
    return worst


def export_openvino(network: CartoonNetwork, path: str | os.PathLike, *, dynamic: bool = True,
                    height: int | None = None, width: int | None = None) -> Path:
    """Write the float32 network as OpenVINO IR: ``path`` (``.xml``) and the weights beside it (``.bin``).

    Converted with ``openvino.convert_model`` from the ONNX model :func:`export_onnx` writes (same
    ``dynamic``/``height``/``width``; a temporary file) and saved with ``compress_to_fp16=False``, so the
    weights stay float32 (``save_model`` halves them by default). Needs the ``openvino`` extra.
    """
    ov = require("openvino", "OpenVINO export", OPENVINO_EXTRA)
    import tempfile

    path = Path(path)
    if path.suffix != ".xml":
        raise ConfigError(f"{path}: an OpenVINO model is written as NAME.xml (with NAME.bin beside it)")
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="cartoonkit-openvino-") as tmp:
        onnx_path = export_onnx(network, Path(tmp) / "cartoon.onnx", dynamic=dynamic, height=height, width=width)
        model = ov.convert_model(os.fspath(onnx_path))
    ov.save_model(model, os.fspath(path), compress_to_fp16=False)
    return path


def verify_openvino(path: str | os.PathLike, network: CartoonNetwork,
                    inputs: torch.Tensor | np.ndarray | Sequence[torch.Tensor | np.ndarray]) -> float:
    """Max abs difference between OpenVINO (CPU, float32 inference) and PyTorch float32 over ``inputs``.

    ``path`` is an IR ``.xml`` or an ONNX file; ``inputs`` as for :func:`verify_onnx`.
    """
    ov = require("openvino", "Checking an OpenVINO export", OPENVINO_EXTRA)
    compiled = ov.Core().compile_model(os.fspath(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    return _max_difference(lambda x: compiled(x)[0], network, inputs, "OpenVINO")
