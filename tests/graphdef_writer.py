"""Test helper: write frozen TensorFlow GraphDefs of the White-box/DCT-Net generator, without TensorFlow.

The protobuf wire format is written by hand with the public field numbers of TensorFlow's
``graph.proto`` / ``node_def.proto`` / ``attr_value.proto`` / ``tensor.proto`` /
``tensor_shape.proto``. The op structure follows White-box Cartoonization's ``unet_generator``
as ``tf.layers``/slim freeze it: ``Const`` weights (H, W, I, O) and biases, optional
``Identity`` ``.../read`` nodes, ``Conv2D`` (strides, padding, data_format, dilations attrs),
``BiasAdd``, ``LeakyRelu``, ``Add`` and ``ResizeBilinear``, from ``input_image`` to ``output_image``.
"""

from __future__ import annotations

import struct

import numpy as np

from cartoonkit.network import TF_LAYER_SCOPES

DT_FLOAT, DT_INT32, DT_HALF = 1, 3, 19


# --------------------------------------------------------------------------- wire format

def varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def key(number: int, wire_type: int) -> bytes:
    return varint(number << 3 | wire_type)


def ld(number: int, payload: bytes | str) -> bytes:
    if isinstance(payload, str):
        payload = payload.encode()
    return key(number, 2) + varint(len(payload)) + payload


def vi(number: int, n: int) -> bytes:
    return key(number, 0) + varint(n)


# --------------------------------------------------------------------------- messages

def shape_proto(dims) -> bytes:
    return b"".join(ld(2, vi(1, int(d))) for d in dims)


def tensor_proto(array: np.ndarray, encoding: str = "content") -> bytes:
    """``encoding``: ``content`` (float32 tensor_content), ``float_val`` (packed), ``half`` (half_val),
    ``int32`` (int_val)."""
    if encoding == "content":
        body = ld(4, np.ascontiguousarray(array, dtype="<f4").tobytes())
        dtype = DT_FLOAT
    elif encoding == "float_val":
        body = ld(5, np.ascontiguousarray(array, dtype="<f4").tobytes())
        dtype = DT_FLOAT
    elif encoding == "half":
        bits = np.ascontiguousarray(array, dtype=np.float16).view(np.uint16).ravel()
        body = ld(13, b"".join(varint(int(b)) for b in bits))
        dtype = DT_HALF
    elif encoding == "int32":
        body = ld(7, b"".join(varint(int(v)) for v in np.ravel(array)))
        dtype = DT_INT32
    else:
        raise ValueError(encoding)
    return vi(1, dtype) + ld(2, shape_proto(np.shape(array))) + body


def attr_type(t: int) -> bytes:
    return vi(6, t)


def attr_s(s: str) -> bytes:
    return ld(2, s)


def attr_f(f: float) -> bytes:
    return key(4, 5) + struct.pack("<f", f)


def attr_b(b: bool) -> bytes:
    return vi(5, int(b))


def attr_ints(values) -> bytes:
    return ld(1, ld(3, b"".join(varint(v) for v in values)))


def attr_shape(dims) -> bytes:
    return ld(7, shape_proto(dims))


def attr_tensor(tensor: bytes) -> bytes:
    return ld(8, tensor)


def node_def(name: str, op: str, inputs=(), attrs: dict[str, bytes] | None = None) -> bytes:
    body = ld(1, name) + ld(2, op) + b"".join(ld(3, i) for i in inputs)
    for k, v in (attrs or {}).items():
        body += ld(5, ld(1, k) + ld(2, v))
    return body


def graph_def(nodes: list[bytes]) -> bytes:
    return b"".join(ld(1, n) for n in nodes) + ld(4, vi(1, 27))  # versions { producer: 27 }


# --------------------------------------------------------------------------- the generator

def tf_layers(state: dict) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{scope: (HWIO kernel, bias)}`` float32 from a ``CartoonNetwork`` state dict (OIHW)."""
    out = {}
    for scope, prefix in TF_LAYER_SCOPES.items():
        w = np.asarray(state[f"{prefix}.weight"], dtype=np.float32)
        out[scope] = (np.ascontiguousarray(np.transpose(w, (2, 3, 1, 0))),
                      np.asarray(state[f"{prefix}.bias"], dtype=np.float32))
    return out


def generator_graphdef(layers: dict[str, tuple[np.ndarray, np.ndarray]], *, identity: bool = True,
                       prefix: str = "", encoding: str = "content", size: int = 256,
                       strides: dict[str, int] | None = None) -> bytes:
    """A frozen GraphDef of ``unet_generator`` (+ a trailing ``output_image``) holding ``layers``.

    Layers missing from ``layers`` are skipped (their input passes straight through), so tests
    can build incomplete graphs; ``strides`` overrides a layer's stride.
    """
    nodes: list[bytes] = []
    g = f"{prefix}generator"
    float_t = {"T": attr_type(DT_FLOAT)}
    nodes.append(node_def("input_image", "Placeholder", attrs={"dtype": attr_type(DT_FLOAT),
                                                               "shape": attr_shape([1, size, size, 3])}))

    def const(name: str, array: np.ndarray) -> str:
        dtype = DT_HALF if encoding == "half" else DT_FLOAT
        nodes.append(node_def(name, "Const", attrs={"dtype": attr_type(dtype),
                                                    "value": attr_tensor(tensor_proto(array, encoding))}))
        if not identity:
            return name
        nodes.append(node_def(f"{name}/read", "Identity", [name], {"T": attr_type(dtype),
                                                                 "_class": ld(1, ld(2, f"loc:@{name}"))}))
        return f"{name}/read"

    def conv(x: str, scope: str) -> str:
        if scope not in layers:
            return x
        kernel, bias = layers[scope]
        stride = (strides or {}).get(scope, 2 if scope in ("Conv_1", "Conv_3") else 1)
        w = const(f"{g}/{scope}/weights", kernel)
        b = const(f"{g}/{scope}/biases", bias)
        nodes.append(node_def(f"{g}/{scope}/Conv2D", "Conv2D", [x, w], {
            **float_t, "strides": attr_ints([1, stride, stride, 1]), "padding": attr_s("SAME"),
            "data_format": attr_s("NHWC"), "dilations": attr_ints([1, 1, 1, 1]),
            "use_cudnn_on_gpu": attr_b(True), "explicit_paddings": ld(1, b"")}))
        nodes.append(node_def(f"{g}/{scope}/BiasAdd", "BiasAdd", [f"{g}/{scope}/Conv2D", b],
                              {**float_t, "data_format": attr_s("NHWC")}))
        return f"{g}/{scope}/BiasAdd"

    counter = iter(range(1000))

    def leaky(x: str) -> str:
        name = f"{g}/LeakyRelu" + (f"_{n}" if (n := next(counter)) else "")
        nodes.append(node_def(name, "LeakyRelu", [x], {**float_t, "alpha": attr_f(0.2)}))
        return name

    def add(a: str, b: str, name: str) -> str:
        nodes.append(node_def(f"{g}/{name}", "Add", [a, b], float_t))
        return f"{g}/{name}"

    def resize(x: str, name: str, hw: int) -> str:
        size_name = f"{g}/{name}/size"
        nodes.append(node_def(size_name, "Const", attrs={"dtype": attr_type(DT_INT32), "value": attr_tensor(
            tensor_proto(np.array([hw, hw], dtype=np.int32), "int32"))}))
        nodes.append(node_def(f"{g}/{name}", "ResizeBilinear", [x, size_name], {
            **float_t, "align_corners": attr_b(False), "half_pixel_centers": attr_b(False)}))
        return f"{g}/{name}"

    x0 = leaky(conv("input_image", "Conv"))
    x1 = leaky(conv(leaky(conv(x0, "Conv_1")), "Conv_2"))
    x2 = leaky(conv(leaky(conv(x1, "Conv_3")), "Conv_4"))
    for blk in range(4):
        y = conv(leaky(conv(x2, f"block_{blk}/conv1")), f"block_{blk}/conv2")
        x2 = add(x2, y, f"block_{blk}/add")
    x2 = leaky(conv(x2, "Conv_5"))
    x3 = leaky(conv(add(resize(x2, "ResizeBilinear", size // 2), x1, "add"), "Conv_6"))
    x3 = leaky(conv(x3, "Conv_7"))
    x4 = leaky(conv(add(resize(x3, "ResizeBilinear_1", size), x0, "add_1"), "Conv_8"))
    out = conv(x4, "Conv_9")
    nodes.append(node_def("output_image", "Identity", [out], float_t))
    return graph_def(nodes)
