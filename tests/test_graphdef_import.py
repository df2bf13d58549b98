"""Frozen TensorFlow GraphDef (.pb) and ModelScope DCT-Net directory import, on GraphDefs built here."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from graphdef_writer import generator_graphdef, graph_def, node_def, tf_layers

from cartoonkit.cli import main
from cartoonkit.errors import WeightImportError
from cartoonkit.network import CartoonNetwork, expected_shapes
from cartoonkit.weights import registry, store
from cartoonkit.weights.graphdef_import import find_dctnet_pair, read_graphdef_weights
from cartoonkit.weights.registry import import_dctnet_dir


@pytest.fixture(scope="module")
def reference() -> tuple[CartoonNetwork, dict[str, np.ndarray]]:
    """A randomly initialised network (non-zero biases too) and its state dict as numpy."""
    torch.manual_seed(1234)
    net = CartoonNetwork().eval()
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith(".bias"):
                p.uniform_(-0.1, 0.1)
    return net, {k: v.numpy().copy() for k, v in net.state_dict().items()}


def _network(state: dict[str, np.ndarray]) -> CartoonNetwork:
    net = CartoonNetwork().eval()
    net.load_state_dict({k: torch.tensor(np.array(v, dtype=np.float32)) for k, v in state.items()})
    return net


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("identity", [True, False], ids=["with-read-nodes", "without-read-nodes"])
@pytest.mark.parametrize("encoding", ["content", "float_val"])
def test_imported_network_matches_the_weights_it_was_built_from(tmp_path, reference, identity, encoding):
    net, state = reference
    pb = _write(tmp_path / "gen.pb", generator_graphdef(tf_layers(state), identity=identity, encoding=encoding))
    imported = read_graphdef_weights(pb)
    assert {k: v.shape for k, v in imported.items()} == expected_shapes()
    assert all(v.dtype == np.float32 for v in imported.values())
    for k in state:
        np.testing.assert_array_equal(imported[k], state[k], err_msg=k)
    x = torch.rand(1, 3, 32, 48) * 2 - 1
    with torch.no_grad():
        diff = (_network(imported)(x) - net(x)).abs().max().item()
    assert diff < 1e-6


def test_outer_prefix_and_half_precision(tmp_path, reference):
    _, state = reference
    pb = _write(tmp_path / "gen.pb", generator_graphdef(tf_layers(state), prefix="dctnet/head/", encoding="half"))
    imported = read_graphdef_weights(pb)
    assert all(v.dtype == np.float16 for v in imported.values())
    for k in state:
        np.testing.assert_array_equal(imported[k], state[k].astype(np.float16), err_msg=k)


def test_missing_block_is_named(tmp_path, reference):
    _, state = reference
    layers = {s: v for s, v in tf_layers(state).items() if not s.startswith("block_2/")}
    pb = _write(tmp_path / "short.pb", generator_graphdef(layers))
    with pytest.raises(WeightImportError, match=r"short\.pb.*missing \['block_2/conv1', 'block_2/conv2'\]"):
        read_graphdef_weights(pb)


def test_wrong_kernel_shape_says_expected_and_found(tmp_path, reference):
    _, state = reference
    layers = tf_layers(state)
    layers["Conv_4"] = (np.zeros((3, 3, 64, 96), np.float32), np.zeros(96, np.float32))
    pb = _write(tmp_path / "wide.pb", generator_graphdef(layers))
    with pytest.raises(WeightImportError,
                       match=r"generator/Conv_4 has shape \(96, 64, 3, 3\).*expected \(128, 64, 3, 3\)"):
        read_graphdef_weights(pb)


def test_wrong_stride_is_refused(tmp_path, reference):
    _, state = reference
    pb = _write(tmp_path / "s.pb", generator_graphdef(tf_layers(state), strides={"Conv_2": 2}))
    with pytest.raises(WeightImportError, match=r"generator/Conv_2 has \(strides, padding, data_format\) = "
                                                r"\(\[1, 2, 2, 1\], 'SAME', 'NHWC'\), expected \(\[1, 1, 1, 1\]"):
        read_graphdef_weights(pb)


def test_random_bytes_are_not_a_graphdef(tmp_path):
    junk = _write(tmp_path / "x.pb", np.random.default_rng(0).bytes(4096))
    with pytest.raises(WeightImportError, match=r"x\.pb: not a TensorFlow GraphDef"):
        read_graphdef_weights(junk)
    with pytest.raises(WeightImportError, match="not a TensorFlow GraphDef"):
        registry.import_model(junk, name="junk", models_dir=tmp_path / "models")
    empty = _write(tmp_path / "empty.pb", b"")
    with pytest.raises(WeightImportError, match="not a TensorFlow GraphDef"):
        read_graphdef_weights(empty)


def test_graph_without_generator_convolutions_is_refused(tmp_path):
    nodes = [node_def("input_image", "Placeholder"), node_def("w", "Const"),
             node_def("encoder/conv/Conv2D", "Conv2D", ["input_image", "w"])]
    pb = _write(tmp_path / "other.pb", graph_def(nodes))
    with pytest.raises(WeightImportError, match=r"found 1 Conv2D nodes: \['encoder/conv/Conv2D'\]"):
        read_graphdef_weights(pb)


def test_import_model_detects_a_pb(tmp_path, reference):
    _, state = reference
    pb = _write(tmp_path / "gen.pb", generator_graphdef(tf_layers(state), identity=False))
    assert registry.detect_format(pb) == "graphdef"
    card = registry.import_model(pb, name="frozen", models_dir=tmp_path / "models")
    assert (card.source_format, card.role) == ("graphdef", "full")
    loaded, _ = store.load_state_dict(tmp_path / "models", "frozen")
    for k in state:
        np.testing.assert_array_equal(loaded[k].numpy(), state[k])


def _dctnet_dir(tmp_path, reference, stem="cartoon_anime"):
    _, state = reference
    folder = tmp_path / "dctnet"
    folder.mkdir()
    layers = tf_layers(state)
    (folder / f"{stem}_h.pb").write_bytes(generator_graphdef(layers))
    bg = {s: (k * 0.5, b) for s, (k, b) in layers.items()}  # a different model for the background
    (folder / f"{stem}_bg.pb").write_bytes(generator_graphdef(bg, identity=False))
    (folder / "alpha.jpg").write_bytes(b"\xff\xd8")
    return folder


def test_dctnet_directory_becomes_a_head_background_pair(tmp_path, reference):
    _, state = reference
    folder = _dctnet_dir(tmp_path, reference)
    assert [p.name for p in find_dctnet_pair(folder)] == ["cartoon_anime_h.pb", "cartoon_anime_bg.pb"]
    models = tmp_path / "models"
    head, bg = import_dctnet_dir(folder, "anime", models_dir=models)
    assert (head.name, head.role, bg.name, bg.role) == ("anime-head", "head", "anime-bg", "background")
    assert {c.name: c.role for c in registry.installed_models(models)} == {"anime-head": "head",
                                                                          "anime-bg": "background"}
    head_state, _ = store.load_state_dict(models, "anime-head")
    bg_state, _ = store.load_state_dict(models, "anime-bg")
    key = "generator.conv4.weight"
    np.testing.assert_array_equal(head_state[key].numpy(), state[key])
    np.testing.assert_array_equal(bg_state[key].numpy(), state[key] * 0.5)


def test_directory_without_a_pair_is_refused(tmp_path, reference):
    folder = _dctnet_dir(tmp_path, reference)
    (folder / "cartoon_anime_bg.pb").unlink()
    with pytest.raises(WeightImportError, match=r"found no pairs among the .pb files \['cartoon_anime_h.pb'\]"):
        import_dctnet_dir(folder, "anime", models_dir=tmp_path / "models")


def test_bad_background_leaves_nothing_installed(tmp_path, reference):
    folder = _dctnet_dir(tmp_path, reference, stem="cartoon")
    (folder / "cartoon_bg.pb").write_bytes(b"\x07garbage")
    models = tmp_path / "models"
    with pytest.raises(WeightImportError, match="cartoon_bg.pb: not a TensorFlow GraphDef"):
        import_dctnet_dir(folder, "pair", models_dir=models)
    assert not models.exists() or not list(models.iterdir())


def test_cli_imports_a_dctnet_directory(tmp_path, reference, monkeypatch, capsys):
    folder = _dctnet_dir(tmp_path, reference)
    models = tmp_path / "cli-models"
    monkeypatch.setenv("CARTOONKIT_MODELS", str(models))
    assert main(["models", "import", str(folder), "--name", "anime"]) == 0
    out = capsys.readouterr().out
    assert "anime-head (role head" in out and "anime-bg (role background" in out
    assert json.loads((models / "anime-bg.json").read_text())["role"] == "background"
    assert main(["models", "import", str(folder / "cartoon_anime_h.pb"), "--name", "single"]) == 0
    assert json.loads((models / "single.json").read_text())["source_format"] == "graphdef"


# --------------------------------------------------------------------------- cross-check with protobuf

def _tensorflow_messages():
    """GraphDef & co. compiled at run time by the protobuf runtime from a descriptor written here,
    with TensorFlow's public field numbers: an encoder and decoder independent of both the importer
    and ``graphdef_writer``."""
    pb = pytest.importorskip("google.protobuf")
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    F = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(name="cartoonkit_test_tf.proto", package="tensorflow",
                                              syntax="proto3")

    def message(name, fields, parent=None):
        msg = (parent.nested_type if parent else file.message_type).add(name=name)
        for fname, number, ftype, label, type_name in fields:
            f = msg.field.add(name=fname, number=number, type=ftype, label=label)
            if type_name:
                f.type_name = type_name
        return msg

    opt, rep = F.LABEL_OPTIONAL, F.LABEL_REPEATED
    shape = message("TensorShapeProto", [("dim", 2, F.TYPE_MESSAGE, rep, ".tensorflow.TensorShapeProto.Dim"),
                                         ("unknown_rank", 3, F.TYPE_BOOL, opt, None)])
    message("Dim", [("size", 1, F.TYPE_INT64, opt, None), ("name", 2, F.TYPE_STRING, opt, None)], shape)
    message("TensorProto", [("dtype", 1, F.TYPE_INT32, opt, None),
                            ("tensor_shape", 2, F.TYPE_MESSAGE, opt, ".tensorflow.TensorShapeProto"),
                            ("tensor_content", 4, F.TYPE_BYTES, opt, None),
                            ("float_val", 5, F.TYPE_FLOAT, rep, None),
                            ("int_val", 7, F.TYPE_INT32, rep, None),
                            ("half_val", 13, F.TYPE_INT32, rep, None)])
    attr = message("AttrValue", [("list", 1, F.TYPE_MESSAGE, opt, ".tensorflow.AttrValue.ListValue"),
                                 ("s", 2, F.TYPE_BYTES, opt, None), ("i", 3, F.TYPE_INT64, opt, None),
                                 ("f", 4, F.TYPE_FLOAT, opt, None), ("b", 5, F.TYPE_BOOL, opt, None),
                                 ("type", 6, F.TYPE_INT32, opt, None),
                                 ("shape", 7, F.TYPE_MESSAGE, opt, ".tensorflow.TensorShapeProto"),
                                 ("tensor", 8, F.TYPE_MESSAGE, opt, ".tensorflow.TensorProto")])
    message("ListValue", [("s", 2, F.TYPE_BYTES, rep, None), ("i", 3, F.TYPE_INT64, rep, None)], attr)
    node = message("NodeDef", [("name", 1, F.TYPE_STRING, opt, None), ("op", 2, F.TYPE_STRING, opt, None),
                               ("input", 3, F.TYPE_STRING, rep, None), ("device", 4, F.TYPE_STRING, opt, None),
                               ("attr", 5, F.TYPE_MESSAGE, rep, ".tensorflow.NodeDef.AttrEntry")])
    entry = message("AttrEntry", [("key", 1, F.TYPE_STRING, opt, None),
                                  ("value", 2, F.TYPE_MESSAGE, opt, ".tensorflow.AttrValue")], node)
    entry.options.map_entry = True
    message("VersionDef", [("producer", 1, F.TYPE_INT32, opt, None)])
    message("GraphDef", [("node", 1, F.TYPE_MESSAGE, rep, ".tensorflow.NodeDef"),
                         ("versions", 4, F.TYPE_MESSAGE, opt, ".tensorflow.VersionDef")])
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    assert pb  # imported for the skip
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tensorflow.GraphDef"))


def test_protobuf_runtime_agrees_with_the_writer_and_the_reader(tmp_path, reference):
    GraphDef = _tensorflow_messages()
    _, state = reference
    written = generator_graphdef(tf_layers(state), prefix="outer/")
    graph = GraphDef.FromString(written)  # the hand-written bytes are a valid GraphDef ...
    conv = next(n for n in graph.node if n.name == "outer/generator/Conv_3/Conv2D")
    assert list(conv.attr["strides"].list.i) == [1, 2, 2, 1] and conv.attr["padding"].s == b"SAME"
    weights = next(n for n in graph.node if n.name == "outer/generator/Conv_3/weights")
    t = weights.attr["value"].tensor
    assert [d.size for d in t.tensor_shape.dim] == [3, 3, 64, 64]
    np.testing.assert_array_equal(np.frombuffer(t.tensor_content, "<f4").reshape(3, 3, 64, 64),
                                  tf_layers(state)["Conv_3"][0])
    # ... and what protobuf itself serializes (its own map-entry and packed-field encoding) reads back.
    for n in graph.node:
        if n.op == "Const" and n.attr["value"].tensor.dtype == 1:
            tensor = n.attr["value"].tensor
            tensor.float_val.extend(np.frombuffer(tensor.tensor_content, "<f4").tolist())
            tensor.tensor_content = b""
    reserialized = _write(tmp_path / "protobuf.pb", graph.SerializeToString(deterministic=True))
    assert reserialized.read_bytes() != written
    imported = read_graphdef_weights(reserialized)
    for k in state:
        np.testing.assert_array_equal(imported[k], state[k], err_msg=k)


def test_an_imported_dctnet_pair_is_used_by_name(tmp_path, reference):
    from cartoonkit import Cartoonizer

    models = tmp_path / "models"
    import_dctnet_dir(_dctnet_dir(tmp_path, reference), "anime", models_dir=models)
    assert registry.resolve_pair("anime", models) == ("anime-bg", "anime-head")
    assert registry.resolve_pair("anime-head", models) == ("anime-head", None)
    ck = Cartoonizer.from_pretrained(model="anime", device="cpu", models_dir=models)
    assert (ck.model_card.name, ck.head_model) == ("anime-bg", "anime-head")
    assert ck._head_engine() is not ck.engine
