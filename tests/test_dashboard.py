"""The Streamlit dashboard through AppTest, plus its per-file processing and grid helper directly."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from cartoonkit import analysis, paths

st_testing = pytest.importorskip("streamlit.testing.v1")
APP = str(paths.project_root() / "streamlit_app.py")
SMALL = 512  # the smallest resolution the sidebar offers; keeps the CPU work short


def _jpeg(width: int = 96, height: int = 64) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)).save(
        buffer, format="JPEG")
    return buffer.getvalue()


def _image_count(at) -> int:
    """st.image elements; older Streamlit versions file them under "imgs"."""
    return len(at.get("image")) + len(at.get("imgs"))


@pytest.fixture
def app(models_dir):
    at = st_testing.AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception
    return at


# --------------------------------------------------------------------------- grid helper


def test_grid_places_cells_row_by_row():
    images = [np.full((10 + i, 20, 3), 10 * i, dtype=np.uint8) for i in range(6)]
    out = analysis.grid(images, rows=2, cols=3, gap=4)
    assert out.shape == (2 * 15 + 4, 3 * 20 + 2 * 4, 3)   # every cell as large as the largest image
    assert (out[0, 24] == 10).all() and (out[19, 48] == 50).all()  # (row 0, col 1) and (row 1, col 2)
    assert (out[15, 0] == 255).all()                      # the gap between rows is background


def test_grid_with_labels_adds_a_strip_and_checks_counts():
    images = [np.zeros((8, 8, 3), np.uint8)] * 4
    out = analysis.grid(images, 2, 2, labels=list("abcd"), gap=0, label_height=20)
    assert out.shape == (2 * 28, 16, 3)
    assert (out[20:28, 0:8] == 0).all() and (out[:20] < 255).any()  # image under its (drawn) label
    with pytest.raises(ValueError):
        analysis.grid(images, 3, 2)
    with pytest.raises(ValueError):
        analysis.grid(images, 2, 2, labels=["only one"])


# --------------------------------------------------------------------------- processing without Streamlit


def test_process_uploads_reports_a_bad_file_and_processes_the_rest(cartoonizer):
    from cartoonkit.dashboard import Settings, process_uploads

    good = _jpeg()
    files = [("broken.jpg", good[: len(good) // 3]), ("notes.txt", b"not an image"), ("good.jpg", good)]
    outcomes = process_uploads(files, Settings(resolution=256, format="webp", quality=80), cartoonizer)
    assert [o.name for o in outcomes] == ["broken.jpg", "notes.txt", "good.jpg"]
    assert outcomes[0].error.startswith("broken.jpg:") and "truncated" in outcomes[0].error
    assert outcomes[1].error.startswith("notes.txt:") and "not an image" in outcomes[1].error
    ok = outcomes[2]
    assert ok.error is None and ok.after.shape == (171, 256, 3) and ok.before.shape == ok.after.shape
    assert ok.file_name == "good.webp" and ok.data[8:12] == b"WEBP"
    assert {"decode", "preprocess", "network", "postprocess", "encode"} <= ok.timings.keys()


# --------------------------------------------------------------------------- the app


def test_app_starts_on_every_page_without_exceptions(app):
    for page in ("Compare", "Performance", "Cartoonize"):
        app.sidebar.radio(key="page").set_value(page).run()
        assert not app.exception, page
    assert app.sidebar.selectbox(key="model").value == "whitebox"


def test_cartoonize_sample_portraits(app):
    from cartoonkit.samples import sample_photos

    app.sidebar.selectbox(key="resolution").set_value(SMALL)
    app.sidebar.selectbox(key="format").set_value("jpg")
    app.checkbox(key="use_samples").check()
    app.button(key="run").click().run()
    assert not app.exception and not app.error
    outcomes = app.session_state["cartoonize_outcomes"]
    assert len(outcomes) == len(sample_photos())
    for outcome in outcomes:
        assert outcome.error is None and max(outcome.after.shape[:2]) == SMALL
        assert outcome.file_name.endswith(".jpg") and outcome.data[:3] == b"\xff\xd8\xff"
    assert len(app.get("download_button")) == len(outcomes)
    assert _image_count(app) == 2 * len(outcomes)  # before and after per photo
    captions = [c.value for c in app.caption]
    assert sum("network" in c and "encode" in c for c in captions) == len(outcomes)


def test_cartoonize_bad_upload_shows_an_error_naming_the_file(app):
    uploader = app.file_uploader(key="uploads")
    if not hasattr(uploader, "set_value"):
        pytest.skip("this Streamlit's AppTest cannot simulate uploads (covered by the process_uploads test)")
    app.sidebar.selectbox(key="resolution").set_value(SMALL)
    uploader.set_value([("bad.png", b"\x89PNG\r\n\x1a\n garbage", "image/png"),
                        ("fine.jpg", _jpeg(), "image/jpeg")])
    app.button(key="run").click().run()
    assert not app.exception
    assert len(app.error) == 1 and app.error[0].value.startswith("bad.png:")
    outcomes = app.session_state["cartoonize_outcomes"]
    assert outcomes[1].error is None and outcomes[1].after.shape[:2] == (341, SMALL)


def test_compare_grid_has_rows_times_cols_cells(app):
    app.sidebar.radio(key="page").set_value("Compare").run()
    app.multiselect(key="compare_weights").set_value([0.0, 1.0])
    app.multiselect(key="compare_resolutions").set_value([256, 512])
    app.button(key="compare_run").click().run()
    assert not app.exception and not app.error
    cells, rows, cols, _ = app.session_state["compare_cells"]
    assert (rows, cols) == (2, 2) and len(cells) == 4
    assert [max(c.image.shape[:2]) for c in cells] == [256, 256, 512, 512]
    assert _image_count(app) == 4 and len(app.get("download_button")) == 1
    grid = Image.open(io.BytesIO(app.session_state["compare_grid_png"]))
    assert grid.format == "PNG" and grid.width > 2 * 512 and grid.height > 2 * 256


def test_process_uploads_compound_mode_times_the_head_stages(models_dir):
    from cartoonkit.dashboard import Settings, process_uploads
    from cartoonkit.dashboard.common import format_timings
    from cartoonkit.samples import astronaut_path

    files = [("astronaut.jpg", astronaut_path().read_bytes())]
    outcome, = process_uploads(files, Settings(mode="compound", resolution=256, device="cpu", precision="float32"))
    assert outcome.error is None and outcome.after.shape == (256, 256, 3)
    assert {"detect", "align", "head_network", "paste", "encode"} <= outcome.timings.keys()
    assert "head_network" in format_timings(outcome.timings)


def test_performance_page_shows_the_machine_and_benchmark_charts(app):
    from cartoonkit.dashboard.performance_page import benchmark_rows

    app.sidebar.radio(key="page").set_value("Performance").run()
    assert not app.exception
    assert any("torch" in c.value for c in app.code)
    files = {row["file"] for row in benchmark_rows()}
    assert files and len(app.get("plotly_chart")) == len(files)
