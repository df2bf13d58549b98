"""The benchmark's bookkeeping (not its timings, which belong in BENCHMARKS.md)."""

from __future__ import annotations

import json

import pytest
import torch

from cartoonkit.bench.images import psnr
from cartoonkit.bench.results import BenchResult, BenchRow, CompoundRow, format_table
from cartoonkit.bench.run import conv_flops, run_benchmarks


def test_conv_flops_matches_hand_count():
    # (in, out, kernel, output pixels as a fraction of the input's): the UNet, layer by layer.
    layers = [(3, 32, 7, 1), (32, 32, 3, 1 / 4), (32, 64, 3, 1 / 4), (64, 64, 3, 1 / 16), (64, 128, 3, 1 / 16),
              *[(128, 128, 3, 1 / 16)] * 8, (128, 64, 3, 1 / 16), (64, 64, 3, 1 / 4), (64, 32, 3, 1 / 4),
              (32, 32, 3, 1), (32, 3, 7, 1)]
    pixels = 1024 * 1024
    expected = sum(2 * cin * cout * k * k * pixels * frac for cin, cout, k, frac in layers)
    assert conv_flops(1024, 1024) == expected
    assert round(expected / 1e9) == 261


def test_psnr():
    a = torch.zeros(3, 4, 4)
    assert psnr(a, a) == float("inf")
    assert psnr(a, a + 255) == pytest.approx(0.0)
    assert psnr(a, torch.full_like(a, 300)) == pytest.approx(0.0)  # clipped like a saved image


def test_run_benchmarks_writes_rows_and_json(models_dir, shared_images, tmp_path):
    out = tmp_path / "bench.json"
    result = run_benchmarks([256], repeats=1, device="cpu", images=str(shared_images), output=out,
                            variants=["eager-fp32", "channels_last-reduced"], end_to_end_count=2,
                            print_table=False)
    saved = json.loads(out.read_text())
    assert saved["rows"] == result["rows"]
    kinds = {(r["variant"], r["name"]) for r in saved["rows"]}
    assert kinds == {(v, what) for v in ("eager-fp32", "channels_last-reduced")
                     for what in ("model", "end_to_end", "batch_end_to_end")}
    for row in saved["rows"]:
        assert row["ms_per_image"] > 0 and row["images_per_second"] > 0
    eager = next(r for r in saved["rows"] if r["variant"] == "eager-fp32" and r["name"] == "model")
    assert eager["psnr_vs_fp32"] == float("inf")  # the reference against itself
    assert saved["gflop_per_image"] == {"256": 16.3}
    peak = saved["peak"]  # measured after the rows, on the same device (issue 23)
    assert peak["device"] == "cpu" and peak["matmul_tflops"]["float32"] > 0 and peak["copy_gb_per_s"] > 0
    for row in saved["rows"]:
        model = row["name"] == "model"
        assert (row["achieved_tflops"] is not None) == model
        rate = peak["matmul_tflops"].get(row["precision"])
        if model and rate:
            assert row["share_of_peak"] == pytest.approx(row["achieved_tflops"] / rate)
    assert "| eager-fp32 | model | 256 |" in format_table(saved)
    assert BenchResult.from_json(saved).to_json() == saved  # what it wrote is what the schema reads


OLD_ROW = {"variant": "eager-fp32", "name": "model", "resolution": 512, "batch": 2, "ms_per_image": 50.0,
           "images_per_second": 20.0, "precision": "float32", "psnr_vs_fp32": float("inf"), "repeats": 5,
           "images": 2, "flop_fraction": None}  # written before peak_memory_mb, with the field since removed


def test_result_schema_round_trips_and_reads_older_files():
    result = BenchResult(machine="m", torch="2.x", photos=["a.jpg"], gflop_per_image={"512": 65.2},
                         checks={"onnx_max_abs_diff_512": 1e-5},
                         rows=[BenchRow("eager-fp32", "model", 512, 1, 10.0, 100.0, "float32", 40.0, 3, 1, 12.5)],
                         compound=[CompoundRow("p.jpg", "1", 512, 80.0, {"network": 0.5, "detect": 0.5}, ["n"])])
    data = json.loads(json.dumps(result.to_json()))
    assert set(data) == {"machine", "torch", "photos", "gflop_per_image", "checks", "rows", "compound"}
    assert BenchResult.from_json(data) == result
    old = BenchResult.from_json({"machine": "m", "rows": [OLD_ROW]})
    assert old.rows == [BenchRow("eager-fp32", "model", 512, 2, 50.0, 20.0, "float32", float("inf"), 5, 2)]
    assert "flop_fraction" not in old.to_json()["rows"][0]
    assert "| eager-fp32 | model | 512 | 2 | float32 | 50.0 | 20.00 | inf |  |" in format_table({"rows": [OLD_ROW]})


def test_result_schema_drops_only_what_it_cannot_use():
    data = {"machine": 3, "photos": "oops", "gflop_per_image": {"256": 16.3, "512": "?"}, "checks": [],
            "rows": [{"variant": "tflite-cpu", "resolution": 224.0, "images_per_second": 4.0, "batch": True},
                     {"variant": "x", "resolution": 512, "ms_per_image": -1}, {"variant": "y", "ms_per_image": 1},
                     {"variant": "z", "resolution": 256, "ms_per_image": float("nan")}, None],
            "compound": [{"share": {"network": 1, "paste": None}, "resolution": "big"}, {"photo": "no share"}]}
    result = BenchResult.from_json(data)
    assert (result.machine, result.photos, result.gflop_per_image, result.checks) == ("3", [], {"256": 16.3}, {})
    assert result.rows == [BenchRow("tflite-cpu", "model", 224, 1, 250.0, 4.0)]
    assert result.compound == [CompoundRow("?", "", None, None, {"network": 1.0})]
    assert BenchResult.from_json([1, 2]) == BenchResult() == BenchResult.from_json(None)
    assert "| ? |  |  |  |" in format_table(data)  # a compound entry without times still prints
