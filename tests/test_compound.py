"""Compound portrait mode: background pass plus aligned head passes, through the public API and CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cartoonkit import Cartoonizer
from cartoonkit.config import CartoonConfig
from cartoonkit.errors import ConfigError, ModelError
from cartoonkit.imageio import read_image

RES = 384


@pytest.fixture(scope="module")
def results(cartoonizer, shared_images):
    out = {}
    for name in ("wb_actress2.jpg", "wb_mountain4.jpg"):
        decoded = read_image(shared_images / name)
        out[name] = tuple(cartoonizer.process(decoded, CartoonConfig(resolution=RES, mode=mode))
                          for mode in ("full", "compound"))
    return out


def test_compound_changes_the_face_and_nothing_far_from_it(results):
    full, compound = results["wb_actress2.jpg"]
    assert "compound mode: 1 face(s)" in compound.notes
    assert compound.rgb.shape == full.rgb.shape
    diff = (compound.rgb.int() - full.rgb.int()).abs().sum(0).numpy()
    changed = diff > 0
    assert changed.mean() > 0.01  # the head was redrawn
    ys, xs = np.nonzero(changed)
    h, w = diff.shape
    # Everything outside the pasted head's footprint is the background pass, byte for byte.
    assert ys.max() - ys.min() < h and xs.max() - xs.min() < w
    assert (diff[:, :5] == 0).all() or (diff[:, -5:] == 0).all()
    assert set(compound.timings) >= {"detect", "align", "head_network", "paste"}


def test_no_face_falls_back_to_full_mode_and_says_so(results):
    full, compound = results["wb_mountain4.jpg"]
    assert any("no face found" in note for note in compound.notes)
    assert np.array_equal(compound.rgb.numpy(), full.rgb.numpy())


def test_process_many_matches_process_in_compound_mode(cartoonizer, shared_images, results):
    config = CartoonConfig(resolution=RES, mode="compound")
    many = cartoonizer.process_many([read_image(shared_images / "wb_actress2.jpg"),
                                     read_image(shared_images / "wb_mountain4.jpg")], config)
    assert np.array_equal(many[0].rgb.numpy(), results["wb_actress2.jpg"][1].rgb.numpy())
    assert np.array_equal(many[1].rgb.numpy(), results["wb_mountain4.jpg"][1].rgb.numpy())


def test_style_weight_zero_is_the_photo_in_compound_mode(cartoonizer, shared_images):
    decoded = read_image(shared_images / "wb_actress2.jpg")
    plain = cartoonizer.process(decoded, CartoonConfig(resolution=RES, style_weight=0.0))
    compound = cartoonizer.process(decoded, CartoonConfig(resolution=RES, style_weight=0.0, mode="compound"))
    assert np.array_equal(plain.rgb.numpy(), compound.rgb.numpy())


def test_bad_mode_settings_and_unknown_head_model(models_dir):
    with pytest.raises(ConfigError, match="mode='cartoon'"):
        CartoonConfig(mode="cartoon")
    with pytest.raises(ConfigError, match="face_size"):
        CartoonConfig(face_size=4096)
    with pytest.raises(ModelError, match="'nope' is not installed"):
        Cartoonizer.from_pretrained(device="cpu", head_model="nope")


def test_cli_run_and_batch_in_compound_mode(models_dir, shared_images, tmp_path, capsys):
    import shutil

    from cartoonkit.cli import main

    src = tmp_path / "in"
    src.mkdir()
    for name in ("wb_actress2.jpg", "wb_food16.jpg"):
        shutil.copy(shared_images / name, src / name)
    assert main(["run", str(src), "-o", str(tmp_path / "run"), "--mode", "compound", "--resolution", "256"]) == 0
    assert main(["-q", "batch", str(src), "-o", str(tmp_path / "batch"), "--mode", "compound",
                 "--resolution", "256"]) == 0
    for name in ("wb_actress2.png", "wb_food16.png"):
        assert (tmp_path / "run" / name).read_bytes() == (tmp_path / "batch" / name).read_bytes()
    state = json.loads((tmp_path / "batch" / ".cartoonkit-batch.json").read_text())
    assert "compound" in json.dumps(state)
    # Resuming with other settings (full mode) is refused.
    assert main(["-q", "batch", str(src), "-o", str(tmp_path / "batch"), "--resume", "--resolution", "256"]) == 2
    capsys.readouterr()


def test_faces_of_several_photos_share_head_network_calls(cartoonizer, shared_images, monkeypatch):
    config = CartoonConfig(resolution=RES, mode="compound", face_size=256)
    decoded = [read_image(shared_images / n) for n in ("wb_actress2.jpg", "wb_party7.jpg", "wb_mountain4.jpg")]
    alone = [cartoonizer.process(d, config) for d in decoded]
    engine, calls = cartoonizer.engine, []
    real_call = type(engine).__call__

    def spy(self, rgb):
        calls.append(tuple(rgb.shape))
        return real_call(self, rgb)

    monkeypatch.setattr(type(engine), "__call__", spy)
    together = cartoonizer.process_many(decoded, config)
    head_calls = [c for c in calls if c[-2:] == (256, 256)]
    assert head_calls == [(5, 3, 256, 256)]  # 1 + 4 + 0 faces, one engine call
    for a, b in zip(alone, together, strict=True):
        assert a.notes == b.notes
        assert (a.rgb.int() - b.rgb.int()).abs().max() <= 2  # bf16 kernels may differ by batch size
