"""cartoonkit.analysis.walkthrough: the step-by-step measurement notebook 05 shows."""

from __future__ import annotations

import pytest

from cartoonkit.analysis import walkthrough


@pytest.fixture(scope="module")
def rows(models_dir, shared_images):
    files = [shared_images / "wb_actress2.jpg", shared_images / "wb_liuyifei4.jpg"]
    return walkthrough.run_walkthrough(files, 256, 1, compile=False, batch_size=2, device="cpu", echo=None)


def test_every_step_in_order_with_a_reason(rows):
    assert [r["step"] for r in rows] == list(walkthrough.STEPS)
    assert all(r["why"] for r in rows)


def test_end_to_end_steps_are_measured_and_chained(rows):
    measured = [r for r in rows if r["status"] == "measured"]
    assert [r["step"] for r in measured] == ["naive", "decode path", "channels_last", "reduced precision",
                                             "batching and shape buckets", "pipelined I/O"]
    for before, after in zip(measured[:-1], measured[1:], strict=True):
        assert after["before_ms"] == before["after_ms"]
        assert after["gain"] == pytest.approx(after["before_ms"] / after["after_ms"])
        assert after["vs_naive"] == pytest.approx(measured[0]["after_ms"] / after["after_ms"])
    assert all(r["after_ms"] > 0 for r in measured)


def test_skipped_steps_say_why(rows):
    by_step = {r["step"]: r for r in rows}
    assert by_step["compile"]["status"].startswith("skipped") and by_step["compile"]["after_ms"] is None
    assert by_step["int8 (CPU)"]["status"] == "skipped: compile=False (int8 compiles once per shape)"
    for step in walkthrough.GPU_STEPS:
        assert by_step[step]["status"] == "skipped: needs a CUDA GPU"


def test_table_chart_and_summary(rows):
    table = walkthrough.markdown_table(rows)
    assert table.count("\n") == len(rows) + 1 and "pipelined I/O" in table
    figure = walkthrough.gain_chart(rows)
    assert list(figure.data[0].x) == [r["step"] for r in rows if r["status"] == "measured"]
    text = walkthrough.summary(rows)
    assert "naive pipeline" in text and "needs a CUDA GPU" in text


def test_photo_files_cycle():
    files = walkthrough.photo_files(7)
    assert len(files) == 7 and all(f.is_file() for f in files)


@pytest.mark.gpu
def test_gpu_steps(models_dir, shared_images):
    files = [shared_images / "wb_actress2.jpg"]
    codecs = walkthrough.codec_ms(files, "cuda", repeats=1)
    assert all(v > 0 for v in codecs.values())
    rows = walkthrough.run_walkthrough(files, 256, 1, compile=False, device="cuda", echo=None)
    assert all(r["status"] == "measured" for r in rows if r["step"] in walkthrough.GPU_STEPS)
