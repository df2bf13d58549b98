"""The benchmark's yardstick (issue 23): the measured matmul peak and copy bandwidth, each model row's achieved
TFLOP/s and share of that peak, their place in the results' JSON, and the TensorRT peer's skip path."""

from __future__ import annotations

import json
import math
import sys

import pytest
import torch

from cartoonkit.bench.peak import int_mm_works, measure_peak, peak_precisions
from cartoonkit.bench.results import (
    BenchResult,
    BenchRow,
    MachinePeak,
    achieved_tflops,
    format_table,
    precision_key,
    share_of_peak,
)
from cartoonkit.bench.run import TENSORRT_SKIP, annotate_rates, bench_tensorrt, conv_flops
from cartoonkit.errors import MissingDependencyError

TINY = {"matmul_size": 64, "copy_mb": 1, "repeats": 2}
CPU = torch.device("cpu")


def test_peak_on_the_cpu_is_positive_and_finite_for_each_precision():
    peak = measure_peak(CPU, **TINY)
    expected = peak_precisions(CPU)
    assert list(peak.matmul_tflops) == expected and "float32" in expected
    assert ("int8" in expected) == int_mm_works(CPU)  # int8 only where torch._int_mm runs
    assert all(math.isfinite(v) and v > 0 for v in peak.matmul_tflops.values())
    assert peak.copy_gb_per_s is not None and math.isfinite(peak.copy_gb_per_s) and peak.copy_gb_per_s > 0
    assert (peak.device, peak.matmul_size, peak.copy_mb, peak.repeats) == ("cpu", 64, 1, 2)
    assert peak.threads == torch.get_num_threads() and peak.float32_tf32 is None
    assert 0 < peak.seconds < 30


def test_int8_peak_is_left_out_where_int_mm_does_not_run(monkeypatch):
    monkeypatch.delattr(torch, "_int_mm", raising=False)
    assert not int_mm_works(CPU)
    peak = measure_peak(CPU, precisions=["float32", "int8"], **TINY)
    assert list(peak.matmul_tflops) == ["float32"]


def test_int_mm_works_matches_torch():
    if not hasattr(torch, "_int_mm"):
        assert not int_mm_works(CPU)
        return
    a = torch.ones(32, 32, dtype=torch.int8)
    try:
        works = torch._int_mm(a, a)[0, 0].item() == 32
    except (RuntimeError, NotImplementedError):
        works = False
    assert int_mm_works(CPU) == works


def test_precision_key_names_the_peak_a_row_is_held_against():
    assert precision_key("float16") == "float16"
    assert precision_key("int8 (conv0, conv8 float32)") == "int8"
    assert precision_key("int8 (rest bfloat16)") == "int8"
    assert precision_key("float32 (fp16 weights)") == "float32"
    assert precision_key("") is None and precision_key("f16") is None


def test_share_is_achieved_over_the_peak_of_the_rows_precision():
    # By hand: 261.3 GFLOP at 3.09 ms per image is 261.3 / 3.09 = 84.56 TFLOP/s; against a float16 peak of
    # 790 TFLOP/s that is 84.56 / 790 = 10.70 %. An int8 row is held against the int8 peak, not float16's.
    peak = MachinePeak(device="cuda", matmul_tflops={"float16": 790.0, "float32": 395.0, "int8": 1580.0})
    rate = achieved_tflops(261.3, 3.09)
    assert rate == pytest.approx(84.563, abs=1e-3)
    assert share_of_peak(rate, peak, "float16") == pytest.approx(0.10704, abs=1e-5)
    assert share_of_peak(rate, peak, "int8 (rest bfloat16)") == pytest.approx(84.563 / 1580, abs=1e-6)
    assert share_of_peak(rate, peak, "bfloat16") is None  # no bfloat16 peak measured
    assert share_of_peak(rate, None, "float16") is None and share_of_peak(None, peak, "float16") is None


def test_annotate_rates_on_rows_of_a_run():
    gflop_1024 = conv_flops(1024, 1024) / 1e9
    peak = MachinePeak(device="cpu", matmul_tflops={"float32": 0.1, "bfloat16": 0.2, "int8": 0.4})
    rows = [BenchRow("channels_last-reduced", "model", 1024, 1, 2000.0, 0.5, "bfloat16"),
            BenchRow("compiled-int8", "model", 1024, 1, 1000.0, 1.0, "int8"),
            BenchRow("onnxruntime-cpu-fp32", "model", 1024, 1, 4000.0, 0.25, "float32"),
            BenchRow("channels_last-reduced", "end_to_end", 1024, 1, 2500.0, 0.4, "bfloat16")]
    annotate_rates(rows, peak, CPU)
    assert rows[0].achieved_tflops == pytest.approx(gflop_1024 / 2000)  # 261.3 GFLOP in 2 s: 0.131 TFLOP/s
    assert rows[0].share_of_peak == pytest.approx(gflop_1024 / 2000 / 0.2)
    assert rows[1].share_of_peak == pytest.approx(gflop_1024 / 1000 / 0.4)
    assert rows[2].share_of_peak == pytest.approx(gflop_1024 / 4000 / 0.1)
    assert rows[3].achieved_tflops is None and rows[3].share_of_peak is None  # end to end: no rate
    # On a GPU run, a peer that ran on the CPU gets its rate but no share of the GPU's peak.
    gpu_rows = [BenchRow("channels_last-reduced", "model", 512, 16, 0.8, 1250.0, "float16"),
                BenchRow("openvino-fp32", "model", 512, 1, 300.0, 3.3, "float32"),
                BenchRow("tensorrt-fp16", "model", 512, 16, 0.4, 2500.0, "float16")]
    annotate_rates(gpu_rows, MachinePeak(device="cuda", matmul_tflops={"float16": 800.0, "float32": 400.0}),
                   torch.device("cuda"))
    gflop_512 = conv_flops(512, 512) / 1e9
    assert gpu_rows[0].share_of_peak == pytest.approx(gflop_512 / 0.8 / 800)
    assert gpu_rows[1].achieved_tflops == pytest.approx(gflop_512 / 300) and gpu_rows[1].share_of_peak is None
    assert gpu_rows[2].share_of_peak == pytest.approx(gflop_512 / 0.4 / 800)


def _result() -> BenchResult:
    row = BenchRow("channels_last-reduced", "model", 1024, 16, 3.09, 323.6, "float16", 80.0, 5, 16, 900.0,
                   achieved_tflops=84.56, share_of_peak=0.107)
    peak = MachinePeak(device="cuda", matmul_tflops={"float16": 790.0, "bfloat16": 785.0, "float32": 380.0},
                       copy_gb_per_s=4300.0, matmul_size=8192, copy_mb=1024, repeats=5, float32_tf32=True,
                       seconds=1.2)
    return BenchResult(machine="NVIDIA H200", torch="2.11", gflop_per_image={"1024": 261.3}, rows=[row], peak=peak)


def test_results_with_peak_round_trip_through_json():
    result = _result()
    data = json.loads(json.dumps(result.to_json()))
    assert data["peak"]["matmul_tflops"]["float16"] == 790.0 and data["peak"]["copy_gb_per_s"] == 4300.0
    assert data["rows"][0]["achieved_tflops"] == 84.56 and data["rows"][0]["share_of_peak"] == 0.107
    assert BenchResult.from_json(data) == result
    table = format_table(data)
    assert "measured peak on cuda: float16 790 TFLOP/s, bfloat16 785 TFLOP/s, float32 (TF32) 380 TFLOP/s; " \
           "copy 4300 GB/s" in table
    assert "| TFLOP/s | share of peak |" in table
    assert "| 3.1 | 323.60 | 80.0 | 900 | 84.6 | 10.7 % |" in table


def test_a_result_without_peak_or_rates_still_loads_and_prints():
    old = {"machine": "AMD EPYC", "torch": "2.14", "gflop_per_image": {"512": 65.3},
           "rows": [{"variant": "eager-fp32", "name": "model", "resolution": 512, "batch": 1, "ms_per_image": 579.6,
                     "images_per_second": 1.73, "precision": "float32", "psnr_vs_fp32": None, "repeats": 5,
                     "images": 1, "peak_memory_mb": 300.0}]}
    result = BenchResult.from_json(old)
    assert result.peak is None and result.rows[0].achieved_tflops is None and result.rows[0].share_of_peak is None
    assert "peak" not in result.to_json()
    table = format_table(old)
    assert "measured peak" not in table
    assert "| eager-fp32 | model | 512 | 1 | float32 | 579.6 | 1.73 |  | 300 |  |  |" in table
    # A broken peak is dropped, not the file; rates that are not positive numbers are left out.
    broken = BenchResult.from_json({**old, "peak": {"matmul_tflops": {"float16": "fast", "float32": -1, "int8": 2},
                                                    "float32_tf32": "yes"}})
    assert broken.peak == MachinePeak(matmul_tflops={"int8": 2.0}) and len(broken.rows) == 1
    assert BenchResult.from_json({**old, "peak": [1]}).peak is None


def test_cpu_table_uses_gflops():
    peak = MachinePeak(device="cpu", matmul_tflops={"float32": 0.11, "int8": 0.06}, copy_gb_per_s=16.8,
                       matmul_size=1024, copy_mb=64, repeats=5, threads=2)
    row = BenchRow("eager-fp32", "model", 512, 1, 600.0, 1.67, "float32", achieved_tflops=0.1088,
                   share_of_peak=0.989)
    table = format_table(BenchResult(rows=[row], peak=peak).to_json())
    assert "float32 110 GFLOP/s, int8 60.0 GOP/s; copy 16.8 GB/s (matmul 1024², copy 64 MiB, median of 5, " \
           "2 threads)" in table
    assert "| GFLOP/s | share of peak |" in table and "| 109 | 98.9 % |" in table


def test_tensorrt_peer_is_skipped_with_the_install_hint_on_the_cpu():
    lines = []
    assert bench_tensorrt("whitebox", torch.zeros(3, 64, 64, dtype=torch.uint8), [64], [1], 1, {}, CPU,
                          echo=lines.append) == []
    assert lines == [TENSORRT_SKIP] and "pip install 'cartoonkit[tensorrt]'" in lines[0]


def test_tensorrt_runner_names_the_extra_when_torch_tensorrt_is_missing(monkeypatch):
    from cartoonkit.bench.peers import TensorRTRunner
    from cartoonkit.errors import ConfigError
    from cartoonkit.network import CartoonNetwork

    with pytest.raises(ConfigError, match="CUDA"):
        TensorRTRunner(CartoonNetwork(), "cpu")
    monkeypatch.setitem(sys.modules, "torch_tensorrt", None)  # as if not installed, even on a GPU machine
    with pytest.raises(MissingDependencyError, match=r"pip install 'cartoonkit\[tensorrt\]'"):
        TensorRTRunner(CartoonNetwork(), torch.device("cuda"))


@pytest.mark.gpu
def test_peak_on_cuda_is_positive_and_restores_tf32():
    before = torch.get_float32_matmul_precision()
    peak = measure_peak("cuda", matmul_size=1024, copy_mb=16, repeats=2)
    assert set(peak.matmul_tflops) >= {"float16", "float32"} and all(v > 0 for v in peak.matmul_tflops.values())
    assert peak.copy_gb_per_s > 0 and peak.float32_tf32 is not None and peak.threads is None
    assert torch.get_float32_matmul_precision() == before
