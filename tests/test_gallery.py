"""The session gallery: results from the pages kept across page switches, compared, downloaded as one zip."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest

from cartoonkit import paths
from cartoonkit.dashboard import common, gallery

st_testing = pytest.importorskip("streamlit.testing.v1")
APP = str(paths.project_root() / "streamlit_app.py")


def _outcome(name: str, value: int, error: str | None = None) -> common.Outcome:
    picture = np.full((8, 12, 3), value, np.uint8)
    return common.Outcome(name=name, error=error, before=picture, after=picture, data=b"\x89PNG" + bytes([value]),
                          file_name=name.rsplit(".", 1)[0] + ".png", seconds=0.5)


def test_add_keeps_results_with_settings_and_drops_errors_and_the_oldest(monkeypatch):
    monkeypatch.setattr(gallery, "MAX_ITEMS", 3)
    state: dict = {}
    small = common.Settings.of(resolution=512)
    for i in range(4):
        gallery.add(state, _outcome(f"p{i}.jpg", i), small if i % 2 else common.Settings(), "Cartoonize")
    assert gallery.add(state, _outcome("bad.jpg", 9, error="bad.jpg: not an image"), small, "Batch") is None
    store = gallery.of(state)
    assert [item.number for item in store.items] == [2, 3, 4] and store.dropped == 1
    assert store.items[0].settings["resolution"] == 512 and store.items[1].settings["resolution"] == 1024
    assert gallery.differences(store.items[0], store.items[1]) == ["resolution 512 / 1024"]


def test_the_gallery_keeps_only_files_and_drops_the_oldest_past_its_byte_budget(monkeypatch):
    """Bounded by bytes as well as by count; the pictures are decoded from the kept file, not kept beside it."""
    from PIL import Image

    picture = np.random.default_rng(0).integers(0, 256, (40, 30, 3), np.uint8)
    png = io.BytesIO()
    Image.fromarray(picture).save(png, format="PNG")
    monkeypatch.setattr(gallery, "MAX_BYTES", 2 * len(png.getvalue()) + 10)
    state: dict = {}
    for i in range(3):
        outcome = common.Outcome(name=f"p{i}.jpg", before=picture, after=picture, data=png.getvalue(),
                                 file_name=f"p{i}.png")
        gallery.add(state, outcome, common.Settings(), "Cartoonize")
    store = gallery.of(state)
    assert [item.number for item in store.items] == [2, 3] and store.dropped == 1
    assert store.bytes == 2 * len(png.getvalue())
    assert not hasattr(store.items[0], "after")
    np.testing.assert_array_equal(store.items[0].picture(), picture)
    monkeypatch.setattr(gallery, "MAX_BYTES", 1)   # a single result over the budget is still kept
    gallery.add(state, outcome, common.Settings(), "Cartoonize")
    assert [item.number for item in store.items] == [4]


def test_zip_holds_every_file_once_and_an_index_of_settings():
    state: dict = {}
    for i, page in enumerate(("Cartoonize", "Batch", "Cartoonize")):
        gallery.add(state, _outcome("same.jpg", i), common.Settings.of(style_weight=0.5 + i / 10), page)
    with zipfile.ZipFile(io.BytesIO(gallery.zip_all(gallery.of(state).items))) as archive:
        assert archive.namelist() == ["001-same.png", "002-same.png", "003-same.png", "gallery.json"]
        assert archive.read("002-same.png") == b"\x89PNG\x01"
        index = json.loads(archive.read("gallery.json"))
    assert [(e["file"], e["page"], e["settings"]["style_weight"]) for e in index] == [
        ("001-same.png", "Cartoonize", 0.5), ("002-same.png", "Batch", 0.6), ("003-same.png", "Cartoonize", 0.7)]


def test_results_survive_page_switches_and_the_gallery_compares_and_zips_them(models_dir):
    from cartoonkit.dashboard import page_file
    from cartoonkit.samples import sample_photos

    def open_page(at, page):
        return at.switch_page(str(page_file(page).relative_to(paths.project_root()))).run()

    at = st_testing.AppTest.from_file(APP, default_timeout=120).run()
    open_page(at, "Gallery")
    assert not at.exception and any("Nothing yet" in i.value for i in at.info)
    open_page(at, "Cartoonize")
    at.sidebar.selectbox(key="resolution").set_value(512)
    at.checkbox(key="use_samples").check()
    at.button(key="run").click().run()
    assert not at.exception
    count = len(sample_photos())
    open_page(at, "Compare")
    open_page(at, "Gallery")
    assert not at.exception
    items = gallery.of(at.session_state).items
    assert len(items) == count and {item.page for item in items} == {"Cartoonize"}
    assert all(item.settings["resolution"] == 512 for item in items)
    assert len(at.get("image")) + len(at.get("imgs")) == count
    if count > 1:
        assert at.selectbox(key="gallery_b").value == items[1].label
    assert any("Download all" in button.label for button in at.get("download_button"))
    at.button(key="gallery_clear").click().run()
    assert not gallery.of(at.session_state).items
