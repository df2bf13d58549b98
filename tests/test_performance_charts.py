"""The Performance page's question-per-chart figures, on rows the test writes (no Streamlit, no benchmark run)."""

from __future__ import annotations

import pytest

from cartoonkit.dashboard import performance_page as pp


def _row(file, variant, resolution, ms, psnr=None, machine="here", precision=""):
    return {"file": file, "machine": machine, "variant": variant, "name": "model", "resolution": resolution,
            "batch": 1, "ms_per_image": ms, "images_per_second": 1000 / ms, "psnr_vs_fp32": psnr,
            "precision": precision}


ROWS = [
    _row("mine", "channels_last-reduced", 512, 100.0, 61.9, precision="bfloat16"),
    _row("mine", "compiled-int8", 512, 50.0, 46.8, precision="int8"),
    _row("mine", "too-lossy-but-cartoonkit", 512, 10.0, 30.0),   # not a cartoonkit variant: counts as a peer
    _row("mine", "onnxruntime-cpu-fp32", 512, 200.0, 144.0, precision="float32"),
    _row("mine", "openvino-int8", 512, 60.0, 40.7, precision="int8"),
    _row("mine", "eager-fp32", 1024, 800.0),
    _row("mine", "openvino-bf16", 1024, 400.0, 62.0),
    _row("elsewhere", "compiled-int8", 512, 40.0, 46.0, machine="other"),
    *[_row("elsewhere", f"peer-{i}", 512, 80.0 + i, machine="other") for i in range(5)],
]


def test_speedup_prefers_this_machines_file_and_divides_by_the_fastest_good_engine():
    figure = pp.speedup_figure(ROWS, machine="here")
    assert "mine" in figure.layout.title.text
    bars = {(trace.name, x): y for trace in figure.data for x, y in zip(trace.x, trace.y, strict=True)}
    assert bars[("512 px", "onnxruntime-cpu-fp32")] == pytest.approx(200 / 50)     # against compiled-int8
    assert bars[("512 px", "openvino-int8")] == pytest.approx(60 / 50)
    assert bars[("1024 px", "openvino-bf16")] == pytest.approx(400 / 800)          # only eager ran at 1024
    assert ("512 px", "compiled-int8") not in bars                               # ours is not an alternative


def test_speedup_drops_engines_below_the_quality_bar():
    rows = [_row("f", "compiled-int8", 512, 10.0, 35.0), _row("f", "channels_last-reduced", 512, 100.0, 61.9),
            _row("f", "openvino-bf16", 512, 150.0, 62.0)]
    (bar,) = [y for trace in pp.speedup_figure(rows).data for y in trace.y]
    assert bar == pytest.approx(1.5)   # against the bfloat16 engine: the 35 dB one does not count


def test_without_this_machine_the_file_with_most_comparisons_is_used():
    assert pp.comparison_file(ROWS, machine="unknown") == "elsewhere"   # 5 peer rows beat 4
    assert pp.comparison_file([_row("f", "openvino-bf16", 512, 1.0)]) is None
    assert pp.speedup_figure([_row("f", "eager-fp32", 512, 1.0), _row("f", "openvino-bf16", 1024, 1.0)]) is None


def test_quality_chart_caps_identical_outputs_and_marks_the_bars():
    figure = pp.quality_figure(ROWS, machine="here")
    values = {x: y for trace in figure.data for x, y in zip(trace.x, trace.y, strict=True)}
    assert values["onnxruntime-cpu-fp32 (float32)"] == 80.0
    assert values["compiled-int8 (int8)"] == pytest.approx(46.8)
    assert {shape.y0 for shape in figure.layout.shapes} == {40.0, 44.0}
    assert pp.quality_figure([_row("f", "eager-fp32", 512, 1.0)]) is None
