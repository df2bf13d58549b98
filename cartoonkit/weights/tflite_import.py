"""Read the generator's weights out of a TFLite flatbuffer, without TensorFlow.

The file's graph is followed, not guessed from names: every ``CONV_2D`` operator's filter and
bias inputs are traced back (through the ``DEQUANTIZE`` operators that float16 files insert) to
their constant tensors, and the layer is identified by the filter constant's name
``generator/<scope>/Conv2D``. The strides and padding of each convolution are checked too, so
a file of a different architecture is refused rather than loaded into the wrong layers.
"""

from __future__ import annotations

import os
import re

import numpy as np

from ..errors import WeightImportError
from .layout import build_state_dict

_FILTER_NAME = re.compile(r"^generator/(?P<scope>.+)/Conv2D(?:_dequantize)?$")
_STRIDE_2_SCOPES = {"Conv_1", "Conv_3"}
_NUMPY_TYPES = {"FLOAT16": np.float16, "FLOAT32": np.float32}


def _enum_names(enum_class) -> dict[int, str]:
    return {v: k for k, v in vars(enum_class).items() if not k.startswith("_")}


def read_tflite_weights(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Return the ``CartoonNetwork`` state dict (numpy, PyTorch layout) stored in a ``.tflite`` file."""
    import tflite  # imported here: only needed when importing weights

    source = os.fspath(path)
    with open(source, "rb") as f:
        buf = f.read()
    if len(buf) < 8 or buf[4:8] != b"TFL3":
        raise WeightImportError(f"{source}: not a TFLite flatbuffer (no 'TFL3' file identifier)")
    try:
        model = tflite.Model.GetRootAsModel(buf, 0)
        if model.SubgraphsLength() != 1:
            raise WeightImportError(f"{source}: expected 1 subgraph, found {model.SubgraphsLength()}")
        graph = model.Subgraphs(0)
        op_names = _enum_names(tflite.BuiltinOperator)
        type_names = _enum_names(tflite.TensorType)

        def opcode(op) -> str:
            code = model.OperatorCodes(op.OpcodeIndex())
            return op_names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "UNKNOWN")

        producers = {}
        for i in range(graph.OperatorsLength()):
            op = graph.Operators(i)
            for out in op.OutputsAsNumpy():
                producers[int(out)] = op

        def constant(tensor_index: int) -> tuple[str, np.ndarray]:
            """Follow DEQUANTIZE back to the stored constant and return (name, values)."""
            op = producers.get(tensor_index)
            if op is not None and opcode(op) == "DEQUANTIZE":
                tensor_index = int(op.InputsAsNumpy()[0])
            tensor = graph.Tensors(tensor_index)
            name = tensor.Name().decode("utf-8", "replace")
            dtype = _NUMPY_TYPES.get(type_names.get(tensor.Type(), "?"))
            data = model.Buffers(tensor.Buffer()).DataAsNumpy()
            if dtype is None or isinstance(data, int) or data.size == 0:
                raise WeightImportError(f"{source}: tensor {name!r} is not a stored float constant")
            return name, np.frombuffer(data.tobytes(), dtype=dtype).reshape(tensor.ShapeAsNumpy())

        layers: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for i in range(graph.OperatorsLength()):
            op = graph.Operators(i)
            if opcode(op) != "CONV_2D":
                continue
            inputs = [int(t) for t in op.InputsAsNumpy()]
            filter_name, kernel = constant(inputs[1])
            match = _FILTER_NAME.match(filter_name)
            if match is None:
                raise WeightImportError(f"{source}: convolution filter {filter_name!r} is not under generator/")
            scope = match["scope"]
            if len(inputs) < 3 or inputs[2] < 0:
                raise WeightImportError(f"{source}: convolution generator/{scope} has no bias")
            _, bias = constant(inputs[2])
            _check_conv_options(op, scope, source, tflite)
            layers[scope] = (kernel, bias)
    except WeightImportError:
        raise
    except Exception as exc:  # a damaged flatbuffer fails in many ways inside the generated code
        raise WeightImportError(f"{source}: cannot parse TFLite flatbuffer ({type(exc).__name__}: {exc})") from exc
    return build_state_dict(layers, "OHWI", source)


def _check_conv_options(op, scope: str, source: str, tflite) -> None:
    options = tflite.Conv2DOptions()
    table = op.BuiltinOptions()
    options.Init(table.Bytes, table.Pos)
    stride = 2 if scope in _STRIDE_2_SCOPES else 1
    found = (options.StrideH(), options.StrideW(), options.Padding(), options.FusedActivationFunction())
    expected = (stride, stride, tflite.Padding.SAME, tflite.ActivationFunctionType.NONE)
    if found != expected:
        raise WeightImportError(
            f"{source}: convolution generator/{scope} has (stride_h, stride_w, padding, activation) = {found}, "
            f"expected {expected} (padding {tflite.Padding.SAME} is SAME)")
