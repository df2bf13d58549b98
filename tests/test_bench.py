"""The benchmark's bookkeeping (not its timings, which belong in BENCHMARKS.md)."""

from __future__ import annotations

import json

import pytest
import torch

from cartoonkit.bench import conv_flops, format_table, psnr, run_benchmarks


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
    assert "| eager-fp32 | model | 256 |" in format_table(saved)
