"""Read the generator's weights out of a frozen TensorFlow GraphDef (``.pb``), without TensorFlow.

ModelScope's DCT-Net ships the White-box UNet generator as frozen GraphDefs (``cartoon_h.pb`` /
``cartoon_bg.pb`` for head and background). The file is a protobuf ``tensorflow.GraphDef``; the
few messages needed here (``GraphDef``, ``NodeDef``, ``AttrValue``, ``TensorProto``,
``TensorShapeProto``) are decoded straight from the protobuf wire format by the small reader
below, using the public field numbers of TensorFlow's ``graph.proto``, ``node_def.proto``,
``attr_value.proto``, ``tensor.proto`` and ``tensor_shape.proto``, so neither TensorFlow nor
``protobuf``/``tensorboard`` is needed.

As in :mod:`.tflite_import`, the graph is followed rather than guessed from names: every
``Conv2D`` node's filter input is traced (through ``Identity`` read nodes) back to a ``Const``,
the ``BiasAdd`` that consumes the convolution gives the bias ``Const``, and the layer is named by
the convolution's scope below ``generator/`` (any outer prefix is tolerated). Strides, padding,
data format and dilations are checked, so a file of a different architecture is refused rather
than loaded into the wrong layers.

This module only reads; storing models (including a DCT-Net folder's pair, with
:func:`~cartoonkit.weights.registry.import_dctnet_dir`) is the catalogue's job.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import WeightImportError
from .layout import build_state_dict

_CONV_NAME = re.compile(r"(?:^|/)generator/(?P<scope>.+)/Conv2D$")
_STRIDE_2_SCOPES = {"Conv_1", "Conv_3"}
_MAX_IDENTITY_CHAIN = 16
_PASS_THROUGH_OPS = {"Identity", "Snapshot"}
_BIAS_OPS = {"BiasAdd", "BiasAddV1"}

# tensorflow/core/framework/types.proto
DT_FLOAT = 1
DT_HALF = 19
_DTYPE_NAMES = {1: "DT_FLOAT", 2: "DT_DOUBLE", 3: "DT_INT32", 4: "DT_UINT8", 6: "DT_INT8", 7: "DT_STRING",
                9: "DT_INT64", 10: "DT_BOOL", 14: "DT_BFLOAT16", 19: "DT_HALF"}


class _WireError(ValueError):
    """The bytes are not well-formed protobuf."""


# --------------------------------------------------------------------------- protobuf wire format

def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise _WireError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise _WireError("varint longer than 10 bytes")


def _fields(buf: memoryview):
    """Yield ``(field_number, wire_type, value)``: ints for varint/fixed, memoryviews for bytes."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise _WireError("field number 0")
        if wire_type == 0:
            value, pos = _varint(buf, pos)
        elif wire_type == 1:
            if pos + 8 > end:
                raise _WireError("truncated fixed64")
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire_type == 2:
            length, pos = _varint(buf, pos)
            if pos + length > end:
                raise _WireError("length-delimited field runs past the end")
            value, pos = buf[pos:pos + length], pos + length
        elif wire_type == 5:
            if pos + 4 > end:
                raise _WireError("truncated fixed32")
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise _WireError(f"unsupported wire type {wire_type}")
        yield number, wire_type, value


def _signed64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _packed_varints(wire_type: int, value) -> list[int]:
    """A repeated int field, packed (one length-delimited run) or not (one varint per field)."""
    if wire_type == 0:
        return [_signed64(value)]
    if wire_type != 2:
        raise _WireError("bad wire type for a repeated integer")
    out, pos = [], 0
    while pos < len(value):
        v, pos = _varint(value, pos)
        out.append(_signed64(v))
    return out


def _packed_floats(wire_type: int, value) -> np.ndarray:
    if wire_type not in (2, 5) or len(value) % 4:
        raise _WireError("bad encoding for a repeated float")
    return np.frombuffer(bytes(value), dtype="<f4")


def _text(value) -> str:
    try:
        return bytes(value).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _WireError("string field is not UTF-8") from exc


# --------------------------------------------------------------------------- TensorFlow messages

@dataclass
class Node:
    """The parts of a ``tensorflow.NodeDef`` the importer needs; attrs stay encoded until used."""

    name: str = ""
    op: str = ""
    inputs: list[str] = field(default_factory=list)
    attrs: dict[str, memoryview] = field(default_factory=dict)

    def data_inputs(self) -> list[str]:
        """Input node names without ``^control`` inputs and without ``:port`` suffixes."""
        return [_node_name(i) for i in self.inputs if not i.startswith("^")]


def _node_name(ref: str) -> str:
    name, _, port = ref.rpartition(":")
    return name if name and port.isdigit() else ref


def _parse_node(buf: memoryview) -> Node:
    node = Node()
    for number, wire_type, value in _fields(buf):
        if wire_type != 2 and number in (1, 2, 3, 5):
            raise _WireError("NodeDef field has the wrong wire type")
        if number == 1:
            node.name = _text(value)
        elif number == 2:
            node.op = _text(value)
        elif number == 3:
            node.inputs.append(_text(value))
        elif number == 5:  # map<string, AttrValue> entry: key = 1, value = 2
            key, attr = "", memoryview(b"")
            for n, wt, v in _fields(value):
                if n == 1 and wt == 2:
                    key = _text(v)
                elif n == 2 and wt == 2:
                    attr = v
            node.attrs[key] = attr
    return node


def parse_graphdef(data: bytes, source: str) -> list[Node]:
    """Decode a serialized ``tensorflow.GraphDef``; refuse anything that is not one."""
    nodes: list[Node] = []
    try:
        for number, wire_type, value in _fields(memoryview(data)):
            if number == 1:  # repeated NodeDef node = 1
                if wire_type != 2:
                    raise _WireError("GraphDef.node has the wrong wire type")
                nodes.append(_parse_node(value))
    except _WireError as exc:
        raise WeightImportError(f"{source}: not a TensorFlow GraphDef (cannot parse it as protobuf: {exc})") from exc
    if not nodes or any(not n.name or not n.op for n in nodes):
        raise WeightImportError(f"{source}: not a TensorFlow GraphDef (no nodes with a name and an op found)")
    return nodes


def _attr(node: Node, key: str) -> dict[int, list[tuple[int, object]]]:
    """Decode one ``AttrValue`` into ``{field_number: [(wire_type, value), ...]}``."""
    out: dict[int, list[tuple[int, object]]] = {}
    for number, wire_type, value in _fields(node.attrs.get(key, memoryview(b""))):
        out.setdefault(number, []).append((wire_type, value))
    return out


def _attr_string(node: Node, key: str) -> str | None:
    values = _attr(node, key).get(2)  # AttrValue.s = 2
    return _text(values[-1][1]) if values else None


def _attr_int_list(node: Node, key: str) -> list[int] | None:
    values = _attr(node, key).get(1)  # AttrValue.list = 1 -> ListValue.i = 3
    if not values:
        return None
    out: list[int] = []
    for number, wire_type, value in _fields(values[-1][1]):
        if number == 3:
            out.extend(_packed_varints(wire_type, value))
    return out


def _tensor(node: Node, source: str) -> np.ndarray:
    """The value of a ``Const`` node (``AttrValue.tensor = 8`` of its ``value`` attr)."""
    values = _attr(node, "value").get(8)
    if not values:
        raise WeightImportError(f"{source}: Const node {node.name!r} holds no tensor")
    dtype, dims, content = 0, [], None
    floats: list[np.ndarray] = []
    halves: list[int] = []
    for number, wire_type, value in _fields(values[-1][1]):
        if number == 1:  # DataType dtype
            dtype = value
        elif number == 2:  # TensorShapeProto: repeated Dim dim = 2 -> int64 size = 1
            for n, _, dim in _fields(value):
                if n == 2:
                    size = 0
                    for dn, dwt, dv in _fields(dim):
                        if dn == 1 and dwt == 0:
                            size = _signed64(dv)
                    dims.append(size)
        elif number == 4:  # bytes tensor_content
            content = bytes(value)
        elif number == 5:  # repeated float float_val
            floats.append(_packed_floats(wire_type, value))
        elif number == 13:  # repeated int32 half_val (float16 bits)
            halves.extend(_packed_varints(wire_type, value))
    if dtype == DT_FLOAT:
        np_dtype, vals = np.dtype("<f4"), (np.concatenate(floats) if floats else np.zeros(0, "<f4"))
    elif dtype == DT_HALF:
        np_dtype, vals = np.dtype("<f2"), np.array(halves, dtype=np.int64).astype(np.uint16).view("<f2")
    else:
        raise WeightImportError(f"{source}: Const node {node.name!r} has dtype "
                                f"{_DTYPE_NAMES.get(dtype, dtype)}, expected DT_FLOAT or DT_HALF")
    if any(d < 0 for d in dims):
        raise WeightImportError(f"{source}: Const node {node.name!r} has an unknown shape {dims}")
    count = int(np.prod(dims, dtype=np.int64))
    if content is not None and len(content):
        if len(content) != count * np_dtype.itemsize:
            raise WeightImportError(f"{source}: Const node {node.name!r} holds {len(content)} bytes, "
                                    f"expected {count * np_dtype.itemsize} for shape {dims}")
        array = np.frombuffer(content, dtype=np_dtype)
    elif len(vals) == count:
        array = vals
    elif 0 < len(vals) < count:  # TensorFlow repeats the last value to fill the shape
        array = np.concatenate([vals, np.full(count - len(vals), vals[-1], dtype=vals.dtype)])
    elif len(vals) == 0:
        array = np.zeros(count, dtype=np_dtype)
    else:
        raise WeightImportError(f"{source}: Const node {node.name!r} holds {len(vals)} values for shape {dims}")
    return array.astype(np_dtype.newbyteorder("="), copy=False).reshape(dims)


# --------------------------------------------------------------------------- following the graph

def read_graphdef(path: str | os.PathLike) -> list[Node]:
    source = os.fspath(path)
    with open(source, "rb") as f:
        return parse_graphdef(f.read(), source)


def read_graphdef_weights(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Return the ``CartoonNetwork`` state dict (numpy, PyTorch layout) stored in a frozen ``.pb`` GraphDef."""
    source = os.fspath(path)
    nodes = read_graphdef(source)
    by_name: dict[str, Node] = {}
    consumers: dict[str, list[Node]] = {}
    for node in nodes:
        by_name[node.name] = node
        for name in node.data_inputs():
            consumers.setdefault(name, []).append(node)

    def constant(ref: str, what: str) -> np.ndarray:
        """Follow Identity read nodes back to the Const they forward."""
        name = _node_name(ref.lstrip("^"))
        for _ in range(_MAX_IDENTITY_CHAIN):
            node = by_name.get(name)
            if node is None:
                raise WeightImportError(f"{source}: {what} comes from {name!r}, which is not in the graph")
            if node.op == "Const":
                try:
                    return _tensor(node, source)
                except _WireError as exc:
                    raise WeightImportError(f"{source}: {what}: Const {node.name!r} is unreadable ({exc})") from exc
            if node.op not in _PASS_THROUGH_OPS or not node.data_inputs():
                raise WeightImportError(f"{source}: {what} comes from {node.op} node {node.name!r}, "
                                        "expected a Const (frozen weights)")
            name = node.data_inputs()[0]
        raise WeightImportError(f"{source}: {what}: Identity chain longer than {_MAX_IDENTITY_CHAIN}")

    convs = [n for n in nodes if n.op == "Conv2D"]
    layers: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    conv_of: dict[str, str] = {}
    for conv in convs:
        match = _CONV_NAME.search(conv.name)
        if match is None:
            continue  # a convolution outside the generator (none in White-box/DCT-Net, tolerated)
        scope = match["scope"]
        what = f"convolution {conv.name!r}"
        if scope in layers:
            raise WeightImportError(f"{source}: two convolutions for layer generator/{scope}: "
                                    f"{conv_of[scope]!r} and {conv.name!r}")
        inputs = conv.data_inputs()
        if len(inputs) != 2:
            raise WeightImportError(f"{source}: {what} has {len(inputs)} inputs, expected 2 (input, filter)")
        try:
            _check_conv_attrs(conv, scope, source)
        except _WireError as exc:
            raise WeightImportError(f"{source}: {what} has unreadable attributes ({exc})") from exc
        kernel = constant(inputs[1], f"the filter of {what}")
        if kernel.ndim != 4:
            raise WeightImportError(f"{source}: layer generator/{scope} has a {kernel.ndim}-D filter of shape "
                                    f"{kernel.shape}, expected a 4-D (H, W, I, O) kernel")
        biases = [n for n in consumers.get(conv.name, []) if n.op in _BIAS_OPS and n.data_inputs()[:1] == [conv.name]]
        if len(biases) != 1:
            found = sorted(f"{n.op} {n.name!r}" for n in consumers.get(conv.name, []))
            raise WeightImportError(f"{source}: {what} feeds {len(biases)} BiasAdd nodes, expected exactly 1 "
                                    f"(its consumers: {found or 'none'})")
        bias_inputs = biases[0].data_inputs()
        if len(bias_inputs) != 2:
            raise WeightImportError(f"{source}: BiasAdd {biases[0].name!r} has {len(bias_inputs)} inputs, expected 2")
        bias = constant(bias_inputs[1], f"the bias of {what}")
        layers[scope] = (kernel, bias)
        conv_of[scope] = conv.name

    if not layers:
        names = [c.name for c in convs[:8]] + (["..."] if len(convs) > 8 else [])
        raise WeightImportError(f"{source}: not the White-box/DCT-Net UNet generator: no Conv2D node under a "
                                f"'generator/' scope; found {len(convs)} Conv2D nodes: {names or 'none'}")
    return build_state_dict(layers, "HWIO", source)


def _check_conv_attrs(conv: Node, scope: str, source: str) -> None:
    stride = 2 if scope in _STRIDE_2_SCOPES else 1
    data_format = _attr_string(conv, "data_format") or "NHWC"
    found = (_attr_int_list(conv, "strides"), _attr_string(conv, "padding"), data_format)
    expected = ([1, stride, stride, 1], "SAME", "NHWC")
    if found != expected:
        raise WeightImportError(f"{source}: convolution generator/{scope} has (strides, padding, data_format) = "
                                f"{found}, expected {expected}")
    dilations = _attr_int_list(conv, "dilations")
    if dilations is not None and any(d != 1 for d in dilations):
        raise WeightImportError(f"{source}: convolution generator/{scope} has dilations {dilations}, expected 1")


# --------------------------------------------------------------------------- DCT-Net model directories

_HEAD_SUFFIX, _BG_SUFFIX = "_h.pb", "_bg.pb"


def find_dctnet_pair(directory: str | os.PathLike) -> tuple[Path, Path]:
    """The ``(head, background)`` GraphDefs of a ModelScope DCT-Net model directory.

    A pair is ``<stem>_h.pb`` plus ``<stem>_bg.pb`` (``cartoon_h.pb`` / ``cartoon_bg.pb``,
    ``cartoon_anime_h.pb`` / ``cartoon_anime_bg.pb``); the directory must hold exactly one.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise WeightImportError(f"{directory}: not a directory")
    files = sorted(p.name for p in directory.iterdir() if p.is_file())
    pairs = [(directory / f, directory / (f[:-len(_HEAD_SUFFIX)] + _BG_SUFFIX))
             for f in files if f.endswith(_HEAD_SUFFIX) and f[:-len(_HEAD_SUFFIX)] + _BG_SUFFIX in files]
    if len(pairs) != 1:
        found = [f for f in files if f.endswith(".pb")]
        what = "no" if not pairs else f"{len(pairs)}"
        raise WeightImportError(
            f"{directory}: expected one DCT-Net head/background pair (<name>_h.pb and <name>_bg.pb, e.g. "
            f"cartoon_anime_h.pb and cartoon_anime_bg.pb); found {what} pairs among the .pb files {found or 'none'}")
    return pairs[0]

