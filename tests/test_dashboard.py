"""The Streamlit dashboard through AppTest, plus its per-file processing and grid helper directly."""

from __future__ import annotations

import io
import json

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


def _png(width: int = 96, height: int = 64) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (height, width, 3), dtype=np.uint8)).save(
        buffer, format="PNG")
    return buffer.getvalue()


def _uploader(at, key: str):
    uploader = at.file_uploader(key=key)
    if not hasattr(uploader, "set_value"):
        pytest.skip("this Streamlit's AppTest cannot simulate uploads (the plain functions are tested directly)")
    return uploader


def _image_count(at) -> int:
    """st.image elements; older Streamlit versions file them under "imgs"."""
    return len(at.get("image")) + len(at.get("imgs"))


def _open(at, page: str):
    """Go to a page as its link in the navigation does (each page is its own URL)."""
    from cartoonkit.dashboard import page_file

    return at.switch_page(str(page_file(page).relative_to(paths.project_root()))).run()


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
    outcomes = process_uploads(files, Settings.of(resolution=256, format="webp", quality=80), cartoonizer)
    assert [o.name for o in outcomes] == ["broken.jpg", "notes.txt", "good.jpg"]
    assert outcomes[0].error.startswith("broken.jpg:") and "truncated" in outcomes[0].error
    assert outcomes[1].error.startswith("notes.txt:") and "not an image" in outcomes[1].error
    ok = outcomes[2]
    assert ok.error is None and ok.after.shape == (171, 256, 3) and ok.before.shape == ok.after.shape
    assert ok.file_name == "good.webp" and ok.data[8:12] == b"WEBP"
    assert {"decode", "preprocess", "network", "postprocess", "encode"} <= ok.timings.keys()


def test_uploads_take_the_formats_run_and_batch_read(cartoonizer):
    """HEIC and AVIF uploads are cartoonized like any photo; the uploaders list the suffixes batch reads."""
    import pillow_heif

    from cartoonkit.dashboard import Settings, common, process_uploads
    from cartoonkit.formats import IMAGE_SUFFIXES

    assert {f".{t}" for t in common.UPLOAD_TYPES} == IMAGE_SUFFIXES
    assert {"heic", "heif", "avif", "mpo", "jxl", "tif", "jp2"} <= set(common.UPLOAD_TYPES)
    assert "HEIC/HEIF" in common.UPLOAD_HELP and "AVIF" in common.UPLOAD_HELP
    pillow_heif.register_heif_opener()
    photo = Image.open(io.BytesIO(_jpeg()))
    files = []
    for name, fmt in (("p.heic", "HEIF"), ("p.avif", "AVIF")):
        buffer = io.BytesIO()
        photo.save(buffer, format=fmt, quality=80)
        files.append((name, buffer.getvalue()))
    outcomes = process_uploads(files, Settings.of(resolution=256, format="png"), cartoonizer)
    assert [(o.error, o.after.shape) for o in outcomes] == [(None, (171, 256, 3))] * 2


def test_photo_uploaders_say_which_formats(app):
    uploaders = {u.key: u for u in app.get("file_uploader")}
    if not uploaders or not hasattr(uploaders.get("uploads"), "proto"):
        pytest.skip("this Streamlit's AppTest does not expose the uploader")
    from cartoonkit.dashboard import common

    proto = uploaders["uploads"].proto
    assert sorted(t.lstrip(".") for t in proto.type) == common.UPLOAD_TYPES
    assert "HEIC/HEIF" in proto.help


# --------------------------------------------------------------------------- the app


def test_app_starts_on_every_page_without_exceptions(app):
    for page in ("Compare", "Performance", "Video", "Cartoonize"):
        _open(app, page)
        assert not app.exception, page
    assert app.sidebar.selectbox(key="model").value == "whitebox"


def test_cartoonize_sample_portraits(app):
    from cartoonkit.samples import sample_photos

    app.sidebar.selectbox(key="resolution").set_value(SMALL)
    app.sidebar.selectbox(key="format").set_value("jpg")
    app.checkbox(key="use_samples").check()
    app.button(key="run").click().run()
    assert not app.exception and not app.error and not app.warning
    job = app.session_state["cartoonize_job"]
    outcomes = job.results
    assert job.state == "done" and len(outcomes) == len(sample_photos())
    for outcome in outcomes:
        assert outcome.error is None and max(outcome.after.shape[:2]) == SMALL
        assert outcome.file_name.endswith(".jpg") and outcome.data[:3] == b"\xff\xd8\xff"
    assert len(app.get("download_button")) == len(outcomes)
    assert _image_count(app) == 2 * len(outcomes)  # before and after per photo
    captions = [c.value for c in app.caption]
    assert sum("network" in c and "encode" in c for c in captions) == len(outcomes)
    # Changing a setting afterwards marks the shown results as made with the old ones.
    app.sidebar.selectbox(key="resolution").set_value(768).run()
    assert [w.value for w in app.warning] == [
        "These results were made with other settings: resolution 512 (now 768). Press Cartoonize to update."]
    assert _image_count(app) == 2 * len(outcomes)  # still shown


def test_cartoonize_bad_upload_shows_an_error_naming_the_file(app):
    uploader = _uploader(app, "uploads")
    app.sidebar.selectbox(key="resolution").set_value(SMALL)
    uploader.set_value([("bad.png", b"\x89PNG\r\n\x1a\n garbage", "image/png"),
                        ("fine.jpg", _jpeg(), "image/jpeg")])
    app.button(key="run").click().run()
    assert not app.exception
    assert len(app.error) == 1 and app.error[0].value.startswith("bad.png:")
    outcomes = app.session_state["cartoonize_job"].results
    assert outcomes[1].error is None and outcomes[1].after.shape[:2] == (341, SMALL)


def test_preprocessing_settings_reach_the_pipeline(app, cartoonizer):
    from cartoonkit.dashboard import Settings, process_uploads

    uploader = _uploader(app, "uploads")
    app.sidebar.selectbox(key="resolution").set_value(SMALL)
    app.sidebar.slider(key="upscale").set_value(1.5)
    app.sidebar.select_slider(key="denoise").set_value(5)
    app.sidebar.slider(key="beautify").set_value(0.5)
    uploader.set_value([("p.jpg", _jpeg(), "image/jpeg")])
    app.button(key="run").click().run()
    assert not app.exception and not app.error
    job = app.session_state["cartoonize_job"]
    assert job.settings.config.network_long_side == 768
    config = job.settings.config
    assert (config.upscale, config.denoise, config.beautify) == (1.5, 5, 0.5)
    outcome, = job.results
    assert outcome.after.shape == outcome.before.shape == (341, SMALL, 3)  # back at the output size
    plain, = process_uploads([("p.jpg", _jpeg())], Settings.of(resolution=SMALL), cartoonizer)
    assert np.abs(plain.after.astype(int) - outcome.after).mean() > 1  # the options changed the cartoon
    app.sidebar.slider(key="beautify").set_value(0.0).run()
    assert "beautify 0.5 (now 0.0)" in app.warning[0].value


def test_compare_grid_has_rows_times_cols_cells(app):
    _open(app, "Compare")
    assert app.selectbox(key="compare_columns").value == "style_weight"
    assert app.selectbox(key="compare_rows").value == "resolution"
    app.multiselect(key="compare_values_style_weight").set_value([1.0, 0.0])
    app.multiselect(key="compare_values_resolution").set_value([256, 512])
    app.button(key="compare_run").click().run()
    assert not app.exception and not app.error
    job = app.session_state["compare_job"]
    cells, (rows, cols, _, varied) = job.results, job.meta
    assert (rows, cols) == (2, 2) and len(cells) == 4 and varied == ("style_weight", "resolution")
    assert [dict(c.changes) for c in cells] == [{"resolution": r, "style_weight": w}
                                                for r in (256, 512) for w in (0.0, 1.0)]  # the axes' own order
    assert [max(c.image.shape[:2]) for c in cells] == [256, 256, 512, 512]
    assert cells[0].label.startswith("256px, style 0, ") and cells[0].label.endswith(" ms")
    assert _image_count(app) == 4 and len(app.get("download_button")) == 1
    grid = Image.open(io.BytesIO(app.session_state["compare_grid_png"][1]))
    assert grid.format == "PNG" and grid.width > 2 * 512 and grid.height > 2 * 256
    # the axes' settings may change in the sidebar without marking the grid as stale; others may not
    app.sidebar.selectbox(key="resolution").set_value(768).run()
    assert not app.warning
    app.sidebar.radio(key="mode").set_value("compound").run()
    assert "mode full (now compound)" in app.warning[0].value


def test_compare_any_setting_as_a_single_row(app):
    _open(app, "Compare")
    app.sidebar.selectbox(key="resolution").set_value(SMALL)
    app.selectbox(key="compare_columns").set_value("denoise").run()
    app.selectbox(key="compare_rows").set_value("none").run()
    app.multiselect(key="compare_values_denoise").set_value([0, 7])
    app.button(key="compare_run").click().run()
    assert not app.exception and not app.error
    job = app.session_state["compare_job"]
    assert job.meta[:2] == (1, 2) and [dict(c.changes) for c in job.results] == [{"denoise": 0}, {"denoise": 7}]
    plain, blurred = (c.image.astype(int) for c in job.results)
    assert plain.shape == blurred.shape and max(plain.shape[:2]) == SMALL and np.abs(plain - blurred).mean() > 1


def test_compare_cell_settings_row_by_row():
    from cartoonkit.dashboard.compare_page import cell_settings

    assert cell_settings(("mode", ["full", "compound"]), ("model", ["a", "b"])) == [
        {"model": "a", "mode": "full"}, {"model": "a", "mode": "compound"},
        {"model": "b", "mode": "full"}, {"model": "b", "mode": "compound"}]
    assert cell_settings(("upscale", [1.0, 1.5])) == [{"upscale": 1.0}, {"upscale": 1.5}]


def test_grid_png_of_a_stopped_compare_leaves_the_missing_cells_blank():
    from cartoonkit.dashboard.compare_page import Cell, grid_png

    cells = [Cell((("style_weight", w),), np.zeros((20, 30, 3), np.uint8), 0.1) for w in (0.0, 1.0, 0.0)]  # 3 of 4
    full = Image.open(io.BytesIO(grid_png(cells + [cells[0]], 2, 2)))
    partial = np.asarray(Image.open(io.BytesIO(grid_png(cells, 2, 2))))
    assert partial.shape[:2] == (full.height, full.width)
    assert (partial[-10:, -15:] == 255).all() and (partial[-10:, :15] == 0).all()  # row 2: a cell, then blank


def test_process_uploads_compound_mode_times_the_head_stages(models_dir):
    from cartoonkit.dashboard import Settings, process_uploads
    from cartoonkit.dashboard.common import format_timings
    from cartoonkit.samples import astronaut_path

    files = [("astronaut.jpg", astronaut_path().read_bytes())]
    outcome, = process_uploads(files, Settings.of(mode="compound", resolution=256, device="cpu", precision="float32"))
    assert outcome.error is None and outcome.after.shape == (256, 256, 3)
    assert {"detect", "align", "head_network", "paste", "encode"} <= outcome.timings.keys()
    assert "head_network" in format_timings(outcome.timings)


def _chart_titles(at) -> list[str]:
    import json

    return [json.loads(chart.proto.spec)["layout"]["title"]["text"] for chart in at.get("plotly_chart")]


def test_performance_page_runs_a_short_benchmark_and_charts_it(app, tmp_path, monkeypatch):
    from cartoonkit.dashboard import performance_page

    monkeypatch.setattr(performance_page, "RESULTS_DIR", tmp_path)  # not the checkout's bench-results/
    _open(app, "Performance")
    assert not app.exception
    assert any("torch" in c.value for c in app.code)
    titles = _chart_titles(app)
    stored = {row["file"] for row in performance_page.benchmark_rows()}
    assert stored and all(any(t.startswith(f"{f}:") for t in titles) for f in stored)
    for start in ("Throughput against batch size", "Throughput against resolution",
                  "How much faster than each alternative", "What precision costs in quality", "Compound mode"):
        assert any(t.startswith(start) for t in titles), start

    app.button(key="bench_run").click().run()
    assert not app.exception and not app.error
    saved = list(tmp_path.glob("dashboard-*.json"))
    assert len(saved) == 1
    (name, result), = app.session_state["performance_runs"]
    assert saved[0].stem == name
    assert {(r["variant"], r["resolution"], r["batch"]) for r in result["rows"]} == {
        (v, 256, b) for v in performance_page.SHORT_VARIANTS for b in performance_page.SHORT_BATCHES}
    assert any(t.startswith(f"{name}:") for t in _chart_titles(app))


# --------------------------------------------------------------------------- performance data, leniently read


def test_benchmark_rows_survive_missing_and_broken_fields(tmp_path):
    from cartoonkit.dashboard import performance_page as pp

    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "odd.json").write_text(json.dumps({"rows": [
        {"variant": "eager-fp32", "resolution": 512, "ms_per_image": 500.0},            # no name, batch, machine
        {"variant": "tflite-cpu", "resolution": 224, "images_per_second": 4.0},         # a rate, no time
        {"variant": "channels_last-reduced", "name": "model", "resolution": 224, "batch": 1, "ms_per_image": 100},
        {"variant": "x", "resolution": 512},                                             # no time at all
        {"resolution": 512, "ms_per_image": 1.0}, "a string", {"variant": "y", "resolution": "big",
                                                                "ms_per_image": 3}],
        "compound": [{"photo": "p.jpg", "share": {"network": 0.7, "detect": "n/a"}}, {"photo": "no share"}]}))
    (tmp_path / "no-rows.json").write_text(json.dumps({"machine": "m", "rows": "oops", "compound": 3}))
    rows = pp.benchmark_rows(tmp_path)
    assert [(r["variant"], r["name"], r["batch"], round(r["ms_per_image"]), r["images_per_second"]) for r in rows] \
        == [("eager-fp32", "model", 1, 500, 2.0), ("tflite-cpu", "model", 1, 250, 4.0),
            ("channels_last-reduced", "model", 1, 100, 10.0)]
    _, compound = pp.read_results(json.loads((tmp_path / "odd.json").read_text()), "odd")
    assert compound == [{"photo": "p.jpg", "faces": "", "resolution": "", "share": {"network": 0.7}, "file": "odd"}]
    assert pp.is_peer("tflite-cpu") and not pp.is_peer("eager-fp32")
    assert pp.speedup_figure(rows) is not None           # the peer row and cartoonkit's row side by side
    assert pp.speedup_figure(rows[:2]) is None            # a peer alone at its resolution: nothing to compare
    assert pp.batch_figure(rows) is None and pp.resolution_figure(rows) is not None
    assert pp.stage_figure([]) is None and pp.compound_figure([]) is None


# --------------------------------------------------------------------------- time limit, stop flag (fake clock)


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_run_with_limit_stops_between_items_once_past_the_limit():
    from cartoonkit.dashboard import jobs

    clock, seen = FakeClock(), []

    def slow(item):  # every item takes 50 s
        clock.now += 50
        return item * 10

    job = jobs.Job(total=5, limit_s=120, labels=list("abcde"))
    jobs.run_with_limit(job, [1, 2, 3, 4, 5], slow, on_progress=lambda j, item: seen.append((j.done, item)),
                        clock=clock)
    assert job.results == [10, 20, 30] and seen == [(1, 1), (2, 2), (3, 3)]  # 100 s < 120 s: the third still ran
    assert job.state == "time_limit" and job.elapsed_s == 150 and job.finished.is_set()
    assert job.message() == ("Stopped after 150 s of work (time limit 120 s, set in the sidebar): 3 of 5 files done; "
                             "the finished ones are below.")
    one = jobs.run_with_limit(jobs.Job(total=2, limit_s=1), [1, 2], slow, clock=clock)
    assert one.results == [10] and one.state == "time_limit"  # the first item always runs
    whole = jobs.run_with_limit(jobs.Job(total=2, limit_s=1000), [1, 2], slow, clock=clock)
    assert whole.results == [10, 20] and whole.state == "done" and whole.message() == ""


def test_run_with_limit_stops_on_the_cancel_flag_and_keeps_results_after_a_failure():
    from cartoonkit.dashboard import jobs

    job = jobs.Job(total=4)

    def work(item):
        if item == 2:
            job.cancel.set()  # as the Stop button's rerun does, from another thread
        return item

    jobs.run_with_limit(job, [1, 2, 3, 4], work, clock=FakeClock())
    assert job.results == [1, 2] and job.state == "stopped" and "Stopped by you" in job.message()

    def broken(item):
        if item == 2:
            raise RuntimeError("model file vanished")
        return item

    failed = jobs.run_with_limit(jobs.Job(total=3), [1, 2, 3], broken, clock=FakeClock())
    assert failed.results == [1] and failed.state == "failed" and failed.finished.is_set()
    assert failed.message() == "model file vanished (1 of 3 files done)"


def test_settle_stops_a_job_running_in_another_thread_and_waits_for_its_item():
    import threading

    from cartoonkit.dashboard import jobs

    job, started = jobs.Job(total=3), threading.Event()

    def item(n):
        started.set()
        assert job.cancel.wait(10)  # the first item is still busy when the next run settles the job
        return n

    worker = threading.Thread(target=jobs.run_with_limit, args=(job, [1, 2, 3], item))
    worker.start()
    assert started.wait(10)
    jobs.settle(job, stop_clicked=True, wait_s=10)
    worker.join(10)
    assert job.results == [1] and job.state == "stopped"  # the busy item finished and was kept

    interrupted = jobs.Job(total=2, results=[1])
    interrupted.finished.set()  # its run was stopped by Streamlit at a progress update, flag never looked at
    jobs.settle(interrupted, stop_clicked=False)
    assert interrupted.state == "interrupted" and "Interrupted" in interrupted.message()
    complete = jobs.Job(total=1, results=[1])
    complete.finished.set()
    jobs.settle(complete, stop_clicked=True)
    assert complete.state == "done"


def test_time_limit_default_comes_from_the_environment():
    from cartoonkit.dashboard import jobs

    assert jobs.default_time_limit({}) == 120
    assert jobs.default_time_limit({jobs.TIME_LIMIT_ENV: "30"}) == 30
    assert jobs.default_time_limit({jobs.TIME_LIMIT_ENV: "0.2"}) == 1      # kept within the sidebar's bounds
    assert jobs.default_time_limit({jobs.TIME_LIMIT_ENV: "86400"}) == 3600
    for bad in ("soon", "-5", "0", "inf", "nan"):
        assert jobs.default_time_limit({jobs.TIME_LIMIT_ENV: bad}) == 120, bad


def test_settings_changes_name_what_differs_but_not_the_time_limit():
    from cartoonkit.dashboard import Settings
    from cartoonkit.dashboard.common import settings_changes

    old = Settings.of(resolution=512, format="jpg")
    assert settings_changes(old, Settings.of(resolution=512, format="jpg", time_limit_s=5)) == []
    assert settings_changes(old, Settings.of(resolution=1024, format="png")) == [
        "resolution 512 (now 1024)", "format jpg (now png)"]


# --------------------------------------------------------------------------- batch: zip and report


def test_unique_names_in_the_zip():
    from cartoonkit.dashboard.batch_page import unique_names

    assert unique_names(["a.png", "A.png", "a-2.png", "b.png", "report.json", "../up.png"]) == [
        "a.png", "A-2.png", "a-2-2.png", "b.png", "report-2.json", "up.png"]


def test_batch_zip_has_the_good_files_and_a_report_naming_the_bad_ones(cartoonizer):
    import zipfile

    from cartoonkit.dashboard import Settings, batch_page, common, jobs

    good = _jpeg()
    files = [("same.jpg", good), ("broken.jpg", good[:100]), ("same.png", _png()), ("late.jpg", good)]
    settings = Settings.of(resolution=256, format="png")
    job = jobs.Job(total=len(files), settings=settings, labels=[name for name, _ in files])
    clock = FakeClock()

    def one(file):  # each file "takes" 50 s, counted when it is done
        outcome = common.process_one(file[0], file[1], settings, cartoonizer)
        clock.now += 50
        return outcome

    jobs.run_with_limit(job, files, one, clock=clock)
    assert job.state == "time_limit" and job.done == 3
    archive = zipfile.ZipFile(io.BytesIO(batch_page.build_zip(job)))
    assert sorted(archive.namelist()) == ["report.json", "same-2.png", "same.png"]
    for name in ("same.png", "same-2.png"):
        assert Image.open(archive.open(name)).size == (256, 171)
    report = json.loads(archive.read("report.json"))
    assert [(r["file"], r["status"], r["output"]) for r in report["files"]] == [
        ("same.jpg", "done", "same.png"), ("broken.jpg", "failed", ""), ("same.png", "done", "same-2.png"),
        ("late.jpg", "not run", "")]
    assert report["files"][1]["reason"].startswith("broken.jpg:") and report["files"][3]["reason"] == \
        "time limit reached"
    assert (report["done"], report["failed"], report["not_run"]) == (2, 1, 1) and report["state"] == "time_limit"
    assert report["settings"]["resolution"] == 256 and all(r["ms"] >= 0 for r in report["files"])


def test_batch_page_uploads_to_zip_and_report(app):
    import zipfile

    _open(app, "Batch")
    app.sidebar.selectbox(key="resolution").set_value(SMALL)
    uploader = _uploader(app, "batch_uploads")
    # notes.jpg: text under a photo's name (the uploader itself refuses a .txt: it takes the formats run reads)
    uploader.set_value([("photo.jpg", _jpeg(), "image/jpeg"), ("notes.jpg", b"hello", "image/jpeg"),
                        ("photo.png", _png(), "image/png")])
    app.button(key="batch_run").click().run()
    assert not app.exception
    assert [e.value for e in app.error] == [app.session_state["batch_job"].results[1].error]
    assert app.error[0].value.startswith("notes.jpg:") and "not an image" in app.error[0].value
    table = app.dataframe[0].value
    assert list(table["status"]) == ["done", "failed", "done"] and list(table["output"])[::2] == [
        "photo.png", "photo-2.png"]
    assert len(app.get("download_button")) == 1
    archive = zipfile.ZipFile(io.BytesIO(app.session_state["batch_zip"][1]))
    assert sorted(archive.namelist()) == ["photo-2.png", "photo.png", "report.json"]
    assert Image.open(archive.open("photo-2.png")).size == (SMALL, 341)


def test_photos_in_shared_network_calls_are_the_photos_one_at_a_time(cartoonizer, shared_images):
    from cartoonkit.dashboard import Settings, common

    good = _jpeg()
    files = [(p.name, p.read_bytes()) for p in sorted(shared_images.glob("wb_*.jpg"))[:3]]
    files.insert(1, ("broken.jpg", good[: len(good) // 3]))
    settings = Settings.of(resolution=256, format="png")
    grouped = common.process_group(files, settings, cartoonizer)
    alone = [common.process_one(name, data, settings, cartoonizer) for name, data in files]
    assert [o.name for o in grouped] == [name for name, _ in files]
    assert grouped[1].error == alone[1].error and "truncated" in grouped[1].error
    assert [o.data for o in grouped] == [o.data for o in alone]  # the same bytes, whatever the batch
    assert all(o.error is None and o.data for i, o in enumerate(grouped) if i != 1)


def test_batch_page_takes_photos_per_network_call_from_the_declaration(app, monkeypatch):
    from cartoonkit.dashboard import common

    calls = []
    process_group = common.process_group

    def recording(files, *args, **kwargs):
        calls.append([name for name, _ in files])
        return process_group(files, *args, **kwargs)

    monkeypatch.setattr(common, "process_group", recording)
    _open(app, "Batch")
    box = app.selectbox(key="batch_batch_size")
    assert box.options[0].startswith("auto (default 8 on CUDA, 1 on the CPU)") and box.value is None
    box.set_value(2)
    app.sidebar.selectbox(key="resolution").set_value(SMALL)
    _uploader(app, "batch_uploads").set_value([(f"{n}.jpg", _jpeg(), "image/jpeg") for n in "abc"])
    app.button(key="batch_run").click().run()
    assert not app.exception
    assert calls == [["a.jpg", "b.jpg"], ["c.jpg"]]  # two photos per call, the last one alone
    assert list(app.dataframe[0].value["status"]) == ["done"] * 3


def test_batch_stop_keeps_what_an_interrupted_run_finished(app):
    """A Stop click reruns the script while the old run is busy: the new run settles the job and delivers it."""
    import zipfile

    from cartoonkit.dashboard import Outcome, Settings, jobs

    _open(app, "Batch")
    job = jobs.Job(total=3, settings=Settings.of(resolution=1024), labels=["a.jpg", "b.jpg", "c.jpg"],
                   results=[Outcome(name="a.jpg", data=_png(), file_name="a.png", seconds=0.2)])
    job.finished.set()  # the old run got as far as one file, then Streamlit stopped it at its progress update
    app.session_state["batch_job"] = job
    app.button(key="batch_stop").click().run()
    assert not app.exception and job.state == "stopped"
    assert app.warning[0].value.startswith("Stopped by you") and "1 of 3 files done" in app.warning[0].value
    archive = zipfile.ZipFile(io.BytesIO(app.session_state["batch_zip"][1]))
    assert sorted(archive.namelist()) == ["a.png", "report.json"]
    assert list(app.dataframe[0].value["status"]) == ["done", "not run", "not run"]


def test_cartoonize_time_limit_stops_with_a_message_and_keeps_the_done_photos(app, monkeypatch):
    """The limit acts inside a photo's work too: the second photo passes it while it decodes ("70 s" on the fake
    clock), so it is dropped before its network runs; the first photo always finishes."""
    from cartoonkit.dashboard import common, jobs

    clock, read_image = FakeClock(), common.read_image

    def slow_read_image(*args, **kwargs):  # every decode "takes" 70 s on the fake clock
        clock.now += 70
        return read_image(*args, **kwargs)

    monkeypatch.setattr(jobs, "CLOCK", clock)
    monkeypatch.setattr(common, "read_image", slow_read_image)
    uploader = _uploader(app, "uploads")
    app.sidebar.selectbox(key="resolution").set_value(SMALL)
    app.sidebar.number_input(key="time_limit").set_value(100)
    uploader.set_value([(f"{n}.jpg", _jpeg(), "image/jpeg") for n in "abcd"])
    app.button(key="run").click().run()
    assert not app.exception
    assert [e.value for e in app.error] == [
        "Stopped after 140 s of work (time limit 100 s, set in the sidebar): 1 of 4 photos done; the finished ones "
        "are below."]
    assert [o.name for o in app.session_state["cartoonize_job"].results] == ["a.jpg"]
    assert _image_count(app) == 2 and len(app.get("download_button")) == 1


# --------------------------------------------------------------------------- password gate


def test_password_gate_refuses_every_page_until_the_right_password(models_dir, monkeypatch):
    from cartoonkit.dashboard import PAGES, gate

    monkeypatch.setenv(gate.PASSWORD_ENV, "open sesame")
    for page in PAGES:
        at = st_testing.AppTest.from_file(APP, default_timeout=60)
        at.run()
        _open(at, page)
        assert not at.exception
        assert [t.value for t in at.title] == ["cartoonkit"] and len(at.text_input) == 1, page
        assert not at.sidebar.children, page   # no settings, no page picker
        assert not at.get("file_uploader") and not at.button and not at.error, page
    at.text_input(key="gate_password").input("open sesam").run()
    assert [e.value for e in at.error] == ["Wrong password."] and [t.value for t in at.title] == ["cartoonkit"]
    assert gate.UNLOCKED_KEY not in at.session_state
    at.text_input(key="gate_password").input("open sesame").run()
    assert not at.exception and not at.error and not at.text_input
    assert at.title[0].value == "Performance"  # the page asked for, once unlocked


def test_password_gate_from_streamlit_secrets(models_dir, monkeypatch):
    from cartoonkit.dashboard import gate

    monkeypatch.delenv(gate.PASSWORD_ENV, raising=False)
    at = st_testing.AppTest.from_file(APP, default_timeout=60)
    at.secrets["password"] = "from secrets"
    at.run()
    assert not at.exception and len(at.text_input) == 1 and not at.sidebar.children
    at.text_input(key="gate_password").input("from secrets").run()
    assert not at.exception and at.title[0].value == "Cartoonize"


def test_password_gate_is_off_without_a_password(monkeypatch):
    from cartoonkit.dashboard import gate

    monkeypatch.delenv(gate.PASSWORD_ENV, raising=False)
    assert gate.configured_password() is None
    monkeypatch.setenv(gate.PASSWORD_ENV, "pw")
    assert gate.configured_password() == "pw"
    assert gate.matches("pw", "pw") and not gate.matches("pW", "pw") and not gate.matches("", "pw")


# --------------------------------------------------------------------------- video page


def _video_page(app, seconds: float = 0.4):
    from cartoonkit.dashboard import video_page

    if video_page.sample_clip() is None:
        pytest.skip("../shared/videos/dct_input.mp4 is not beside the checkout")
    pytest.importorskip("av")
    _open(app, "Video")
    app.sidebar.selectbox(key="resolution").set_value(SMALL)
    app.checkbox(key="video_use_sample").check()
    app.number_input(key="video_seconds").set_value(seconds)
    return app


def test_video_page_cartoonizes_the_sample_clip(app):
    _video_page(app).button(key="video_run").click().run()
    assert not app.exception and not app.error and not app.warning
    job = app.session_state["video_job"]
    assert job.state == "done" and len(job.results) == 1
    outcome = job.results[0]
    assert outcome.summary.frames == 10 and (outcome.summary.width, outcome.summary.height) == (512, 288)
    assert outcome.data[4:8] == b"ftyp" and outcome.name == "dct_input-cartoon.mp4"
    assert len(app.get("video")) == 1 and len(app.get("download_button")) == 1
    assert [p[0] for p in outcome.previews] == [0, 4, 9] and _image_count(app) == 6  # before and after, 3 frames
    metrics = {m.label: m.value for m in app.metric}
    assert float(metrics["Warping error (flicker)"]) == pytest.approx(outcome.summary.flicker.output_mean, abs=1e-4)
    assert float(metrics["Frames per second"]) > 0
    assert any("warping error: input" in c.value for c in app.caption)


def test_video_page_asks_for_a_clip(app):
    _open(app, "Video")
    app.button(key="video_run").click().run()
    assert not app.exception and [w.value for w in app.warning] == [
        "Upload a clip or tick 'Use the sample clip' first."]


def test_video_page_names_a_bad_upload(app):
    _open(app, "Video")
    uploader = _uploader(app, "video_upload")
    uploader.set_value([("holiday.mp4", b"this is not a video" * 50, "video/mp4")])
    app.button(key="video_run").click().run()
    assert not app.exception and len(app.error) == 1
    assert "holiday.mp4: not a video" in app.error[0].value and not app.get("video")


def test_video_page_time_limit_writes_no_clip(app, monkeypatch):
    from cartoonkit.dashboard import jobs

    clock = FakeClock()

    class Ticking:  # every look at the clock is 70 s later
        def __call__(self):
            clock.now += 70
            return clock.now

    monkeypatch.setattr(jobs, "CLOCK", Ticking())
    _video_page(app, seconds=2.0)
    app.sidebar.number_input(key="time_limit").set_value(100)
    app.button(key="video_run").click().run()
    assert not app.exception and app.session_state["video_job"].state == "time_limit"
    assert [w.value for w in app.warning] == [
        "Stopped at the time limit (100 s, set in the sidebar): no clip was written (a video is only kept when "
        "complete)."]
    assert not app.get("video") and not app.get("download_button")
