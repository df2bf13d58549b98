"""The engine's switches: precision, memory layout, compilation, buckets, out-of-memory back-off."""

from __future__ import annotations

import logging

import pytest
import torch

from cartoonkit import options as options_module
from cartoonkit.bench.images import psnr, square_photo
from cartoonkit.engine import Engine, EngineOptions, bucket_shape, resolve_precision
from cartoonkit.errors import ConfigError
from cartoonkit.imageio import read_image
from cartoonkit.weights import load_network


@pytest.fixture(scope="module")
def photos(shared_images):
    """Two real photos at 256 x 192 (same shape, so they batch) and one at 192 x 256."""
    a = square_photo(read_image(shared_images / "wb_actress2.jpg").rgb, 256)[:, :, 32:224].contiguous()
    b = square_photo(read_image(shared_images / "wb_party5.jpg").rgb, 256)[:, :, :192].contiguous()
    c = square_photo(read_image(shared_images / "wb_liuyifei4.jpg").rgb, 256)[:, 32:224].contiguous()
    return a, b, c


def make_engine(models_dir, **options) -> Engine:
    return Engine(load_network(models_dir=models_dir)[0], EngineOptions(device="cpu", **options))


def test_precision_resolution(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_precision("auto", cuda) == torch.float16
    monkeypatch.setattr(options_module, "cpu_supports_fast_bf16", lambda: True)
    assert resolve_precision("auto", cpu) == torch.bfloat16
    monkeypatch.setattr(options_module, "cpu_supports_fast_bf16", lambda: False)
    assert resolve_precision("auto", cpu) == torch.float32
    assert resolve_precision("bfloat16", cpu) == torch.bfloat16
    with pytest.raises(ConfigError, match="float16.*CPU"):
        resolve_precision("float16", cpu)
    with pytest.raises(ConfigError, match="precision='half'"):
        EngineOptions(precision="half")
    with pytest.raises(ConfigError, match="bucket"):
        EngineOptions(bucket=30)


def test_bucket_shape():
    assert bucket_shape(256, 171, 64) == (256, 192)
    assert bucket_shape(256, 192, 64) == (256, 192)
    assert bucket_shape(5, 9, 4) == (8, 12)
    assert bucket_shape(1024, 920, 4) == (1024, 920)  # fine buckets: no ladder
    assert bucket_shape(1024, 920, 64) == (1024, 1024)  # 960 is not a rung: to the square
    assert bucket_shape(920, 1024, 64) == (1024, 1024)
    assert bucket_shape(1024, 200, 64) == (1024, 256)  # beyond 2:1 the bucket alone


def test_cuda_engines_get_the_coarse_bucket_even_eager():
    """On CUDA every new shape costs a cuDNN autotuning, so eager CUDA engines pad like compiled ones."""
    from cartoonkit.options import COMPILED_BUCKET, SIZE_MULTIPLE

    assert EngineOptions().resolved("cuda").bucket == COMPILED_BUCKET  # device "auto" that turned out to be CUDA
    assert EngineOptions(device="cuda:1").padding == COMPILED_BUCKET
    assert EngineOptions(precision="float32").resolved("cpu").bucket == SIZE_MULTIPLE
    assert EngineOptions(bucket=8).resolved("cuda").bucket == 8  # asked for by name: kept


@pytest.mark.parametrize("long_side", [512, 1024, 1536, 2048, 4096])
def test_coarse_buckets_are_a_small_fixed_set_per_resolution(long_side):
    from cartoonkit.options import COMPILED_BUCKET, SHAPE_LADDER

    half = long_side // 2
    for short in range(1, long_side + 1):
        for height, width in ((long_side, short), (short, long_side)):
            padded = bucket_shape(height, width, COMPILED_BUCKET)
            assert padded[0] >= height and padded[1] >= width  # padding only adds
            assert padded[0] % COMPILED_BUCKET == 0 and padded[1] % COMPILED_BUCKET == 0
            assert bucket_shape(*padded, COMPILED_BUCKET) == padded  # a bucket shape is its own bucket
    above_half = {bucket_shape(long_side, short, COMPILED_BUCKET) for short in range(half + 1, long_side + 1)}
    assert len(above_half) <= len(SHAPE_LADDER) - 1
    # the common aspect ratios pay no more padding than the 64-pixel rounding alone
    for numerator, denominator in ((9, 16), (2, 3), (3, 4), (4, 5), (1, 1)):
        short = round(long_side * numerator / denominator)
        assert bucket_shape(long_side, short, COMPILED_BUCKET)[1] == -(-short // 64) * 64


def test_reduced_precision_keeps_40_db_on_real_photos(models_dir, photos):
    reference = make_engine(models_dir, precision="float32", channels_last=False)
    bf16 = make_engine(models_dir, precision="bfloat16")
    for photo in photos:
        quality = psnr(bf16(photo[None]), reference(photo[None]))
        assert 40 <= quality < float("inf"), quality  # reduced, really: not bit-identical


def test_channels_last_changes_layout_not_result(models_dir, photos):
    plain = make_engine(models_dir, precision="float32", channels_last=False)
    nhwc = make_engine(models_dir, precision="float32", channels_last=True)
    x = torch.stack(photos[:2])
    torch.testing.assert_close(nhwc(x), plain(x), rtol=0, atol=1e-3)


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_result_does_not_depend_on_batch_companions(models_dir, photos, precision):
    engine = make_engine(models_dir, precision=precision, bucket=64)
    a, b, _ = photos
    alone = engine(a[None])[0]
    together = engine(torch.stack([b, a]))[1]
    tolerance = 1e-2 if precision == "float32" else 0.5  # levels on the 0-255 scale
    assert (alone - together).abs().max() <= tolerance


def test_bucket_padding_is_cropped_and_barely_changes_the_border(models_dir, photos):
    exact = make_engine(models_dir, precision="float32")
    bucketed = make_engine(models_dir, precision="float32", bucket=64)
    photo = photos[0][:, :250, :190]  # 250 x 190 -> padded to 256 x 192
    out = bucketed(photo[None])
    assert out.shape == (1, 3, 250, 190)
    assert psnr(out, exact(photo[None])) > 40


def test_out_of_memory_halves_the_batch_and_completes(models_dir, photos, monkeypatch, caplog):
    engine = make_engine(models_dir, precision="float32")
    x = torch.stack([photos[0], photos[1], photos[0], photos[1]])
    expected = engine(x)
    real_forward, sizes = engine._forward, []

    def small_memory(batch):
        sizes.append(batch.shape[0])
        if batch.shape[0] > 1:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real_forward(batch)

    monkeypatch.setattr(engine, "_forward", small_memory)
    with caplog.at_level(logging.WARNING, logger="cartoonkit.engine"):
        got = engine(x)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-2)
    assert sizes == [4, 2, 1, 1, 2, 1, 1]
    assert "out of memory on a batch of 4" in caplog.text

    monkeypatch.setattr(engine, "_forward", lambda batch: (_ for _ in ()).throw(torch.OutOfMemoryError("oom")))
    with pytest.raises(torch.OutOfMemoryError):
        engine(x[:1])


def test_compiled_engine_matches_eager(models_dir, photos):
    eager = make_engine(models_dir, precision="float32")
    compiled = make_engine(models_dir, precision="float32", compile=True)
    x = photos[0][None, :, :64, :64].contiguous()
    torch.testing.assert_close(compiled(x), eager(x), rtol=0, atol=1e-2)


@pytest.mark.gpu
def test_cuda_half_precision_quality(models_dir, photos):
    reference = make_engine(models_dir, precision="float32")
    gpu = Engine(load_network(models_dir=models_dir)[0], EngineOptions(device="cuda", precision="float16"))
    for photo in photos:
        assert psnr(gpu(photo[None]).cpu(), reference(photo[None])) >= 40


def test_cuda_graphs_need_a_cuda_device(models_dir):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ConfigError, match="cuda_graphs=True: needs a CUDA device"):
        make_engine(models_dir, cuda_graphs=True)


@pytest.mark.gpu
def test_cuda_graph_engine_matches_eager_over_repeated_shapes(models_dir, photos):
    network = load_network(models_dir=models_dir)[0]
    eager = Engine(network, EngineOptions(device="cuda", precision="float16"))
    graphed = Engine(load_network(models_dir=models_dir)[0], EngineOptions(device="cuda", precision="float16",
                                                                                  cuda_graphs=True))
    a, b, _ = photos
    for x in (a[None], b[None], a[None], torch.stack([a, b])):  # replays must not reuse a stale output
        torch.testing.assert_close(graphed(x), eager(x), rtol=0, atol=0.5)


def test_hardware_profiles_and_cpu_recommendation():
    from cartoonkit import doctor, hardware

    assert doctor.find_profile("NVIDIA A100-SXM4-80GB").name == "A100"
    assert doctor.find_profile("NVIDIA A10").name == "A10"
    assert doctor.find_profile("NVIDIA H100 80GB HBM3").name == "H100"
    assert doctor.find_profile("Tesla T4").name == "T4"
    assert doctor.find_profile("Some Future GPU") is None
    assert hardware.cpu_supports_fast_bf16({"avx512f", "avx512_bf16"})
    assert not hardware.cpu_supports_fast_bf16({"avx2"})
    assert hardware.cpu_supports_fast_int8({"avx512f", "avx512_vnni"})
    assert not hardware.cpu_supports_fast_int8({"avx512f", "avx512_bf16"})
    rec = doctor.recommend(torch.device("cpu"))
    assert rec.precision == ("bfloat16" if hardware.cpu_supports_fast_bf16() else "float32")
    assert rec.batch_size >= 1 and rec.reasons
    assert any("--precision int8" in r for r in rec.reasons) == hardware.cpu_supports_fast_int8()


def test_the_recommended_batch_fits_the_free_memory():
    from cartoonkit.doctor import MEMORY_SHARE, batch_that_fits

    gib = 2**30
    assert batch_that_fits(8, 80 * gib, 2 * gib) == 8                 # the default fits
    assert batch_that_fits(8, 10 * gib, 2 * gib) == int(10 * MEMORY_SHARE / 2)  # 4 of 2 GiB in 8 GiB
    assert batch_that_fits(8, 1 * gib, 2 * gib) == 1                  # one image is what there is to run


@pytest.mark.gpu
def test_cuda_recommendation_measures_memory():
    from cartoonkit import doctor

    device = torch.device("cuda")
    small, large = (doctor.measure_image_memory(device, r, torch.float16) for r in (256, 512))
    assert 3 < large / small < 5  # activations scale with the pixel count
    assert doctor.recommend(device, 1024).batch_size >= 1
    assert doctor.recommend(device, 4096).batch_size <= doctor.recommend(device, 512).batch_size


def test_padded_edge_channels_are_the_same_network(models_dir, photos):
    """Issue 23, step 1: the first and last 7x7 convolutions widened to 8 channels with zeros compute the same
    network: in float32 equal up to the order of the sums, in the CPU's default precision as close to float32 as
    the plain engine is; the loaded network keeps the weight files' shapes; int8 refuses it."""
    network = load_network(models_dir=models_dir)[0]
    batch = torch.stack([photos[0], photos[1]])
    plain = Engine(network, EngineOptions(device="cpu", precision="float32"))(batch)
    padded_engine = Engine(network, EngineOptions(device="cpu", precision="float32", pad_edge_channels=True))
    padded = padded_engine(batch)
    assert padded_engine.network.generator.conv0.weight.shape[1] == 8
    assert padded_engine.network.generator.conv9.weight.shape[0] == 8
    assert network.generator.conv0.weight.shape[1] == 3 and network.generator.conv9.weight.shape[0] == 3
    assert padded.shape == plain.shape and (padded - plain).abs().max() < 1e-3  # on 0..255
    reduced = Engine(network, EngineOptions(device="cpu", pad_edge_channels=True))(batch)
    reduced_plain = Engine(network, EngineOptions(device="cpu"))(batch)
    assert psnr(reduced, plain) >= psnr(reduced_plain, plain) - 0.5
    with pytest.raises(ConfigError, match="pad_edge_channels"):
        Engine(network, EngineOptions(device="cpu", precision="int8", pad_edge_channels=True))


@pytest.mark.gpu
def test_padded_edge_channels_on_cuda_keep_44_db(models_dir, photos):
    network = load_network(models_dir=models_dir)[0]
    batch = torch.stack([photos[0], photos[1]])
    reference = Engine(network, EngineOptions(device="cuda", precision="float32"))(batch).cpu()
    for compile in (False, True):
        padded = Engine(network, EngineOptions(device="cuda", pad_edge_channels=True, compile=compile))(batch)
        assert psnr(padded.cpu(), reference) >= 44
