"""Weight import, the safetensors store and the model registry."""

from __future__ import annotations

import functools
import hashlib
import http.server
import shutil
import threading
from dataclasses import replace

import numpy as np
import pytest
import torch

from cartoonkit import paths, weights
from cartoonkit.errors import IntegrityError, ModelError, WeightImportError
from cartoonkit.network import CartoonNetwork, expected_shapes
from cartoonkit.weights import registry, store
from cartoonkit.weights.layout import build_state_dict
from cartoonkit.weights.tflite_import import read_tflite_weights


def test_tflite_import_gives_every_parameter_in_pytorch_layout(tflite_file):
    state = read_tflite_weights(tflite_file)
    assert {k: v.shape for k, v in state.items()} == expected_shapes()
    assert sum(v.size for v in state.values()) == 1_467_075
    assert all(v.dtype == np.float16 for v in state.values())
    # OHWI -> OIHW: the first conv sees 3 input channels, the last produces 3.
    assert state["generator.conv0.weight"].shape == (32, 3, 7, 7)
    assert state["generator.conv9.weight"].shape == (3, 32, 7, 7)


def test_tflite_import_refuses_other_files(tmp_path, tflite_file):
    not_tflite = tmp_path / "model.tflite"
    not_tflite.write_bytes(b"\x00" * 64)
    with pytest.raises(WeightImportError, match="TFL3"):
        read_tflite_weights(not_tflite)
    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes(tflite_file.read_bytes()[:4096])
    with pytest.raises(WeightImportError, match="truncated.tflite"):
        read_tflite_weights(truncated)


def _layers_from(state: dict[str, np.ndarray]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Back to TF scopes and OHWI kernels, to feed build_state_dict like an importer does."""
    from cartoonkit.network import TF_LAYER_SCOPES

    return {scope: (np.transpose(state[f"{prefix}.weight"], (0, 2, 3, 1)), state[f"{prefix}.bias"])
            for scope, prefix in TF_LAYER_SCOPES.items()}


def test_layout_check_names_what_is_missing_or_misshapen(tflite_file):
    layers = _layers_from(read_tflite_weights(tflite_file))
    assert build_state_dict(layers, "OHWI", "f").keys() == expected_shapes().keys()

    missing = dict(layers)
    del missing["block_3/conv2"]
    with pytest.raises(WeightImportError, match=r"missing \['block_3/conv2'\]"):
        build_state_dict(missing, "OHWI", "f")

    extra = dict(layers, **{"Conv_10": layers["Conv_9"]})
    with pytest.raises(WeightImportError, match=r"unexpected \['Conv_10'\]"):
        build_state_dict(extra, "OHWI", "f")

    wide = dict(layers, Conv=(np.zeros((64, 7, 7, 3), np.float32), np.zeros(64, np.float32)))
    with pytest.raises(WeightImportError, match=r"generator/Conv has shape \(64, 3, 7, 7\).*expected \(32, 3, 7, 7\)"):
        build_state_dict(wide, "OHWI", "f")

    nan = dict(layers, Conv_2=(np.full_like(layers["Conv_2"][0], np.nan), layers["Conv_2"][1]))
    with pytest.raises(WeightImportError, match="NaN"):
        build_state_dict(nan, "OHWI", "f")


def test_store_roundtrip_and_integrity_check(tmp_path, tflite_file):
    state = read_tflite_weights(tflite_file)
    card = store.ModelCard(name="m", style="s", source="here", source_sha256="x", licence="L",
                           weights_sha256="", source_format="tflite")
    saved = store.save_model(tmp_path, state, card)
    assert saved.weights_sha256 == hashlib.sha256((tmp_path / "m.safetensors").read_bytes()).hexdigest()
    loaded, loaded_card = store.load_state_dict(tmp_path, "m")
    assert loaded_card == saved
    for k, v in state.items():
        torch.testing.assert_close(loaded[k], torch.from_numpy(v.astype(np.float32)), rtol=0, atol=0)
    assert [c.name for c in store.installed_cards(tmp_path)] == ["m"]

    data = bytearray((tmp_path / "m.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (tmp_path / "m.safetensors").write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="does not match the model card"):
        store.load_state_dict(tmp_path, "m")

    (tmp_path / "m.json").write_text("{not json")
    with pytest.raises(ModelError, match="damaged model card"):
        store.read_card(tmp_path, "m")


def test_load_network_installs_from_local_copy_and_matches_importer(tmp_path, tflite_file):
    net, card = weights.load_network("whitebox", models_dir=tmp_path)
    assert card.source_sha256 == registry.KNOWN_MODELS["whitebox"].sha256
    assert "non-commercial" in card.licence
    reference = CartoonNetwork()
    reference.load_state_dict({k: torch.from_numpy(v.astype(np.float32))
                               for k, v in read_tflite_weights(tflite_file).items()})
    x = torch.rand(1, 3, 32, 36) * 2 - 1
    torch.testing.assert_close(net(x), reference(x), rtol=0, atol=0)


def test_local_copy_with_wrong_checksum_is_refused(tmp_path, monkeypatch):
    assets = tmp_path / "assets"
    assets.mkdir()
    (assets / registry.KNOWN_MODELS["whitebox"].filename).write_bytes(b"TFL3 but not the real file")
    monkeypatch.setattr(paths, "asset_dirs", lambda: [assets])
    with pytest.raises(IntegrityError, match="sha256"):
        registry.install("whitebox", models_dir=tmp_path / "models")
    assert not (tmp_path / "models" / "whitebox.json").exists()


@pytest.fixture()
def http_server(tmp_path):
    """A loopback HTTP server over tmp_path/www, for the download path."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_download_when_no_local_copy(tmp_path, tflite_file, http_server, monkeypatch):
    root, base = http_server
    shutil.copy(tflite_file, root / "w.tflite")
    spec = replace(registry.KNOWN_MODELS["whitebox"], url=f"{base}/w.tflite")
    monkeypatch.setitem(registry.KNOWN_MODELS, "whitebox", spec)
    monkeypatch.setattr(paths, "asset_dirs", lambda: [])
    card = registry.install("whitebox", models_dir=tmp_path / "models")
    assert card.source == spec.url
    assert store.load_state_dict(tmp_path / "models", "whitebox")[1] == card

    bad = replace(spec, name="whitebox", sha256="0" * 64)
    monkeypatch.setitem(registry.KNOWN_MODELS, "whitebox", bad)
    with pytest.raises(IntegrityError):
        registry.install("whitebox", models_dir=tmp_path / "other", force=True)

    missing = replace(spec, url=f"{base}/absent.tflite")
    monkeypatch.setitem(registry.KNOWN_MODELS, "whitebox", missing)
    with pytest.raises(ModelError, match="cannot download"):
        registry.install("whitebox", models_dir=tmp_path / "third")


def test_unknown_model_error_lists_known_models(tmp_path):
    with pytest.raises(ModelError, match="known: whitebox"):
        registry.ensure_installed("nope", tmp_path)


def test_import_refuses_bad_names_and_unknown_formats(tmp_path, tflite_file):
    with pytest.raises(ModelError, match="model name"):
        registry.import_model(tflite_file, name="../evil", models_dir=tmp_path)
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"hello world, not weights")
    with pytest.raises(WeightImportError, match="junk.bin"):
        registry.import_model(junk, name="junk", models_dir=tmp_path)
    with pytest.raises(ModelError, match="no such file"):
        registry.import_model(tmp_path / "absent.tflite", name="x", models_dir=tmp_path)
