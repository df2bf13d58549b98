"""The persistent cache of compiled int8 networks: used when every key matches, rebuilt when any differs or a
file is damaged, held to its size limit, and giving exactly what a fresh compilation gives."""

from __future__ import annotations

import platform

import pytest
import torch

from cartoonkit import compile_cache, quantize
from cartoonkit.compile_cache import CompiledCache, key_of
from cartoonkit.weights import load_network

pytestmark = pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="int8 is x86-64 only")
SHAPE = (1, 3, 64, 96)


@pytest.fixture(scope="module")
def network(models_dir):
    return load_network(models_dir=models_dir)[0]


@pytest.fixture(scope="module")
def photo_batch():
    generator = torch.Generator().manual_seed(3)
    return (torch.rand(SHAPE, generator=generator) * 2 - 1).contiguous(memory_format=torch.channels_last)


@pytest.fixture(scope="module")
def built(network, photo_batch, tmp_path_factory):
    """One int8 network compiled into a fresh cache: (cache, its output, the object that built it)."""
    cache = CompiledCache(tmp_path_factory.mktemp("compiled"))
    first = quantize.Int8Network(network, compute_dtype=torch.bfloat16, cache=cache)
    with torch.inference_mode():
        out = first(photo_batch)
    assert first.built == [SHAPE] and len(cache.entries()) == 2   # the generator's package and the filter's
    return cache, out, first


def _no_compiling(monkeypatch):
    def refuse(self, x, destination):
        raise AssertionError("compiled although the cache holds this shape")

    monkeypatch.setattr(quantize.Int8Network, "_compile_package", refuse)


def test_a_matching_entry_is_loaded_without_calibrating_or_compiling(network, photo_batch, built, monkeypatch):
    cache, out, _ = built
    _no_compiling(monkeypatch)
    again = quantize.Int8Network(network, compute_dtype=torch.bfloat16, cache=cache)  # as a new process would
    with torch.inference_mode():
        assert torch.equal(again(photo_batch), out)  # the same bytes as the fresh compilation
    assert again.built == [] and again._observer_state is None  # no calibration either


@pytest.mark.parametrize("part, value", [("torch", "0.0.0"), ("torchao", "0.0"), ("cpu_isa", ["sse2"]),
                                         ("weights", "0" * 64), ("shape", [2, 3, 64, 96]), ("format", 0),
                                         ("compute_dtype", "torch.float32"), ("channels_last", False)])
def test_an_entry_is_never_loaded_when_any_key_part_differs(network, photo_batch, built, part, value):
    cache, _, first = built
    parts = first.key_parts(photo_batch)
    assert cache.load(key_of(parts)) is not None
    assert part in parts and parts[part] != value
    assert cache.load(key_of({**parts, part: value})) is None


def test_the_key_follows_the_machine_and_the_model(network, photo_batch, monkeypatch):
    plain = quantize.Int8Network(network, cache=CompiledCache("/nonexistent"))
    real = compile_cache.environment_parts()
    monkeypatch.setattr(compile_cache, "environment_parts", lambda: {**real, "torch": "9.9.9"})
    newer = quantize.Int8Network(network, cache=CompiledCache("/nonexistent"))
    assert key_of(plain.key_parts(photo_batch)) != key_of(newer.key_parts(photo_batch))
    assert plain.key_parts(photo_batch)["weights"] == compile_cache.weights_digest(network)
    other = load_network()[0]
    with torch.no_grad():
        other.generator.conv0.weight[0, 0, 0, 0] += 1e-3
    assert compile_cache.weights_digest(other) != compile_cache.weights_digest(network)
    assert plain.key_parts(photo_batch[..., :64])["shape"] != plain.key_parts(photo_batch)["shape"]


def test_a_damaged_entry_is_removed_and_rebuilt(network, photo_batch, built):
    cache, out, first = built
    key = key_of(first.key_parts(photo_batch))
    cache.package(key).write_bytes(b"not a package")
    rebuilt = quantize.Int8Network(network, compute_dtype=torch.bfloat16, cache=cache)
    with torch.inference_mode():
        assert torch.equal(rebuilt(photo_batch), out)
    assert rebuilt.built == [SHAPE] and cache.load(key) is not None


def test_the_cache_keeps_to_its_size_limit(tmp_path):
    cache = CompiledCache(tmp_path, limit_mb=2.5)
    for name in ("old", "middle", "new"):
        cache.store(name, {"name": name}, lambda path: open(path, "wb").write(b"x" * 2**20))
    assert [p.stem for p in cache.entries()] == ["middle", "new"]  # 2 MB fit; the least recently used went
    assert not (tmp_path / "old.json").exists() and cache.size_bytes() == 2 * 2**20
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]  # no temporary files left


def test_a_failed_build_leaves_nothing(tmp_path):
    cache = CompiledCache(tmp_path)

    def fails(path):
        open(path, "wb").write(b"half")
        raise RuntimeError("killed mid-build")

    with pytest.raises(RuntimeError):
        cache.store("k", {}, fails)
    assert list(tmp_path.iterdir()) == []


def test_common_shapes_cover_the_usual_aspect_ratios_in_few_buckets():
    from cartoonkit.warmup import common_shapes

    # 3:2 (683 px) and 16:9 (576 px) short sides round up to their 64-px buckets; at 256 px all but 1:1 share one
    assert common_shapes(1024, 64) == [(1024, 1024), (1024, 768), (768, 1024), (1024, 704), (704, 1024),
                                       (1024, 576), (576, 1024)]
    assert common_shapes(256, 64) == [(256, 256), (256, 192), (192, 256)]


def test_warmup_compiles_once_then_finds_the_cache(capsys, tmp_path, monkeypatch, models_dir):
    from cli_helpers import run_cli

    from cartoonkit import warmup

    monkeypatch.setenv("CARTOONKIT_CACHE", str(tmp_path))  # not the session's cache: keep it to this test
    monkeypatch.setattr(warmup, "ASPECTS", ((1, 1),))
    code, out, _ = run_cli(capsys, "warmup", "--resolution", "256")
    assert code == 0 and "256x256: compiled" in out and "1 compiled, 0 already cached" in out
    code, out, _ = run_cli(capsys, "warmup", "--resolution", "256")
    assert code == 0 and "256x256: cached" in out and "0 compiled, 1 already cached" in out
    assert len(list((tmp_path / "compiled").glob("*.pt2"))) == 2   # the generator and its guided filter


def test_auto_picks_int8_only_once_warm_and_only_where_the_cpu_has_the_instructions(tmp_path, monkeypatch):
    from cartoonkit import options
    from cartoonkit.compile_cache import mark_int8_ready
    from cartoonkit.options import EngineOptions, precision_name

    monkeypatch.setenv("CARTOONKIT_CACHE", str(tmp_path))
    monkeypatch.setattr(options, "cpu_supports_fast_int8", lambda: True)
    monkeypatch.setattr(options, "cpu_supports_fast_bf16", lambda: True)
    assert precision_name("auto", "cpu") == "bfloat16"  # not warmed up: no int8 compile on the first photo
    mark_int8_ready([(256, 256)])
    assert precision_name("auto", "cpu") == "int8"
    assert EngineOptions().resolved("cpu").padding == 64  # the int8 engine's bucket, as the engine uses it
    assert precision_name("auto", "cpu", int8_ok=False) == "bfloat16"  # worker processes
    assert precision_name("auto", "cuda") == "float16"
    monkeypatch.setattr(options, "cpu_supports_fast_int8", lambda: False)  # e.g. an AVX2-only CPU
    assert precision_name("auto", "cpu") == "bfloat16"
    monkeypatch.setattr(options, "cpu_supports_fast_bf16", lambda: False)
    assert precision_name("auto", "cpu") == "float32"
    monkeypatch.setattr(options, "cpu_supports_fast_int8", lambda: True)
    monkeypatch.setattr(options.platform, "machine", lambda: "aarch64")
    assert precision_name("auto", "cpu") == "float32"


def test_warm_auto_in_a_folder_run_is_int8_in_one_process_and_not_in_workers(tmp_path, monkeypatch, models_dir):
    import json

    from cartoonkit import options
    from cartoonkit.compile_cache import mark_int8_ready
    from cartoonkit.folder import STATE_FILE, run_folder

    monkeypatch.setenv("CARTOONKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(options, "cpu_supports_fast_int8", lambda: True)
    mark_int8_ready([])
    (tmp_path / "in").mkdir()
    run_folder(tmp_path / "in", tmp_path / "one", progress=False)
    one = json.loads((tmp_path / "one" / STATE_FILE).read_text())["settings"]
    assert (one["precision"], one["bucket"]) == ("int8", 64)
    run_folder(tmp_path / "in", tmp_path / "two", workers=2, progress=False)  # not refused as "one process"
    two = json.loads((tmp_path / "two" / STATE_FILE).read_text())["settings"]
    assert two["precision"] != "int8" and two["bucket"] == 4


# --------------------------------------------------------------------------- compile=True on the CPU


def test_compiled_float_network_is_cached_and_matches_eager_and_a_fresh_build(network, photo_batch, tmp_path,
                                                                               monkeypatch):
    """``compile=True`` on the CPU builds one package per shape, a second engine (a new process) loads it
    without compiling, and both compute what the eager network computes (float32: up to rounding)."""
    import copy

    from cartoonkit.packaged import CompiledNetwork

    cache = CompiledCache(tmp_path / "compiled")
    float32 = copy.deepcopy(network).eval()
    first = CompiledNetwork(float32, cache=cache)
    with torch.inference_mode():
        out = first(photo_batch)
        eager = float32(photo_batch)
    assert first.built == [SHAPE] and len(cache.entries()) == 2   # the generator's package and the filter's
    assert (out - eager).abs().max() < 1e-4

    def refuse(self, x, destination):
        raise AssertionError("compiled although the cache holds this shape")

    monkeypatch.setattr(CompiledNetwork, "_compile_package", refuse)
    again = CompiledNetwork(float32, cache=cache)
    with torch.inference_mode():
        assert torch.equal(again(photo_batch), out)
    assert again.built == []

    bfloat16 = copy.deepcopy(network).eval()
    bfloat16.generator.to(torch.bfloat16)
    other = CompiledNetwork(bfloat16, cache=cache)
    assert key_of(other.key_parts(photo_batch)) != key_of(first.key_parts(photo_batch))   # never the float32 one


def test_the_engine_compiles_ahead_of_time_on_the_cpu(network):
    from cartoonkit.engine import Engine
    from cartoonkit.options import EngineOptions
    from cartoonkit.packaged import CompiledNetwork

    assert isinstance(Engine(network, EngineOptions(device="cpu", compile=True))._forward, CompiledNetwork)
