"""cartoonkit.analysis measurements against independent, obviously right references (small images)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cartoonkit.analysis import batching, formats, quality, resolution, spectra
from cartoonkit.bench.memory import PeakMemory
from cartoonkit.bench.results import format_table
from cartoonkit.bench.run import model_grid
from cartoonkit.config import CartoonConfig
from cartoonkit.imageencode import encode_image
from cartoonkit.imageio import read_image
from cartoonkit.transforms import blend_to_uint8


@pytest.fixture(scope="module")
def photo(shared_images) -> np.ndarray:
    """A real portrait, 96 x 72 (small: the references below are slow on purpose)."""
    return quality.resize_to(read_image(shared_images / "wb_actress2.jpg").rgb.permute(1, 2, 0).numpy(), 96, 72)


# --------------------------------------------------------------------------- quality


def test_psnr_of_known_mse(photo):
    a = (photo // 2).astype(np.uint8)  # 0..127, so +5 never clips
    assert quality.psnr(a, a + 5) == pytest.approx(10 * np.log10(255 ** 2 / 25))
    b = a.copy()
    b[3, 4, 1] += 51  # one value off by 51: MSE = 51^2 / (96 * 72 * 3)
    assert quality.psnr(a, b) == pytest.approx(10 * np.log10(255 ** 2 * 96 * 72 * 3 / 51 ** 2))
    assert quality.psnr(a, a) == float("inf")
    with pytest.raises(ValueError, match="shapes"):
        quality.psnr(a, a[:-1])


def _slow_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Wang et al. written out: 11 x 11 Gaussian (sigma 1.5) window at every position where it fits."""
    r = np.arange(-5, 6)
    g = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * 1.5 ** 2))
    g /= g.sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    per_channel = []
    for ch in range(3):
        x, y = a[..., ch].astype(np.float64), b[..., ch].astype(np.float64)
        values = []
        for i in range(5, x.shape[0] - 5):
            for j in range(5, x.shape[1] - 5):
                wx, wy = x[i - 5:i + 6, j - 5:j + 6], y[i - 5:i + 6, j - 5:j + 6]
                mx, my = (g * wx).sum(), (g * wy).sum()
                vx, vy = (g * (wx - mx) ** 2).sum(), (g * (wy - my) ** 2).sum()
                cov = (g * (wx - mx) * (wy - my)).sum()
                values.append((2 * mx * my + c1) * (2 * cov + c2) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2)))
        per_channel.append(np.mean(values))
    return float(np.mean(per_channel))


def test_ssim_matches_the_definition(photo):
    a = photo[:32, :28]
    noisy = np.clip(a + np.random.default_rng(0).normal(0, 20, a.shape), 0, 255).astype(np.uint8)
    assert quality.ssim(a, a) == pytest.approx(1.0)
    expected = _slow_ssim(a, noisy)
    assert expected < 0.9  # the noise matters, so agreement below is not agreement on 1.0
    assert quality.ssim(a, noisy) == pytest.approx(expected, abs=1e-6)


def test_compare_at_resizes_both_to_the_reference_aspect():
    reference = np.full((60, 40, 3), 100, np.uint8)
    brighter = np.full((120, 81, 3), 110, np.uint8)  # another resolution, aspect off by rounding
    result = quality.compare_at(brighter, reference, 30)
    assert (result["height"], result["width"]) == (30, 20)
    assert result["psnr"] == pytest.approx(10 * np.log10(255 ** 2 / 100))  # flat images stay flat
    assert quality.compare_at(reference, reference, 30)["ssim"] == pytest.approx(1.0)


# --------------------------------------------------------------------------- spectra


def _dct_matrix(n: int) -> np.ndarray:
    """Orthonormal DCT-II matrix from its textbook formula."""
    k, i = np.arange(n)[:, None], np.arange(n)[None, :]
    c = np.sqrt(2 / n) * np.cos(np.pi * (2 * i + 1) * k / (2 * n))
    c[0] /= np.sqrt(2)
    return c


def test_dct_spectrum_is_the_orthonormal_dct_of_luma(photo):
    y = photo.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    spectrum = spectra.dct_spectrum(photo)
    np.testing.assert_allclose(spectrum, _dct_matrix(96) @ y @ _dct_matrix(72).T, atol=1e-8)
    assert (spectrum ** 2).sum() == pytest.approx((y ** 2).sum())  # Parseval


def test_band_energy_sums_to_one_and_finds_a_cosine():
    rows = np.arange(64)[:, None]
    # DCT basis u = 20 down the rows: radial frequency 20 / 128 = 0.156 cycles/pixel, band 2 of 8 (0.125..0.1875)
    wave = 128 + 100 * np.cos(np.pi * 20 * (2 * rows + 1) / 128) * np.ones((1, 48))
    image = np.repeat(np.round(wave).astype(np.uint8)[..., None], 3, axis=2)
    energy = spectra.band_energy(image, bands=8)
    assert energy.sum() == pytest.approx(1.0)
    assert energy.argmax() == 2 and energy[2] > 0.99
    np.testing.assert_allclose(spectra.band_edges(8)[2:4], [0.125, 0.1875])
    assert spectra.band_energy(np.full((8, 8, 3), 7, np.uint8)).sum() == 0  # flat: no AC energy


def test_band_index_covers_every_ac_coefficient():
    index = spectra.band_index(40, 30, bands=5)
    assert index[0, 0] == -1 and index[-1, -1] == 4 and index[0, 1] == 0
    assert set(np.unique(index)) == {-1, 0, 1, 2, 3, 4}


def test_spectrum_of_a_blend_is_the_blend_of_spectra(photo):
    cartoonish = (photo // 32 * 32 + 16).astype(np.uint8)  # posterised: a different image, same shape
    w = 0.3
    tensor = lambda im: torch.from_numpy(im).permute(2, 0, 1)  # noqa: E731
    blended = blend_to_uint8(tensor(photo), tensor(cartoonish).float(), w).permute(1, 2, 0).numpy()
    expected = w * spectra.dct_spectrum(cartoonish) + (1 - w) * spectra.dct_spectrum(photo)
    rms = np.sqrt(np.mean((spectra.dct_spectrum(blended) - expected) ** 2))
    assert rms < 0.5  # rounding to uint8 only
    np.testing.assert_allclose(spectra.band_weights(photo, cartoonish, blended), w, atol=0.02)


def test_band_weights_tell_a_frequency_filter_from_a_blend(photo):
    from scipy.fft import idctn

    other = np.ascontiguousarray(photo[::-1, ::-1])
    s_photo, s_other = spectra.dct_spectrum(photo), spectra.dct_spectrum(other)
    index = spectra.band_index(96, 72, bands=4)
    mixed_spectrum = np.where(index >= 2, s_other, s_photo)  # high bands from `other`, low from the photo
    grey = idctn(mixed_spectrum, norm="ortho")
    weights = spectra.band_weights(photo, other, grey, bands=4)  # a luma image is accepted as is
    np.testing.assert_allclose(weights, [0, 0, 1, 1], atol=1e-9)


def test_style_sweep_is_a_linear_blend_on_a_real_photo(cartoonizer, shared_images):
    decoded = read_image(shared_images / "wb_liuyifei4.jpg")
    sweep = spectra.style_sweep(cartoonizer, decoded, [0.0, 0.5, 1.0], resolution=256, bands=6)
    assert sweep.band_energy.shape == sweep.band_weight.shape == (3, 6)
    np.testing.assert_allclose(sweep.band_energy.sum(axis=1), 1.0)
    np.testing.assert_array_equal(sweep.outputs[0], sweep.photo)
    np.testing.assert_array_equal(sweep.outputs[2], sweep.cartoon)
    np.testing.assert_allclose(sweep.band_weight, [[0] * 6, [0.5] * 6, [1] * 6], atol=0.02)
    assert sweep.blend_residual.max() < 0.5 < sweep.change_rms[1]
    np.testing.assert_allclose(sweep.high_share, sweep.band_energy[:, 3:].sum(axis=1))


# --------------------------------------------------------------------------- resolution


def test_resolution_study_rows(cartoonizer, shared_images):
    decoded = read_image(shared_images / "wb_liuyifei4.jpg")
    rows, outputs = resolution.resolution_study(cartoonizer, decoded, [256, 320], style_weight=0.5, repeats=1)
    assert [r["resolution"] for r in rows] == [256, 320]
    assert max(outputs[320].shape[:2]) == 320 and max(outputs[256].shape[:2]) == 256
    first, second = rows
    assert first["time_ratio"] == 1 and first["psnr_gain_db@256"] == 0 and first["psnr_gain_db@320"] == 0
    assert second["psnr_vs_largest@320"] == float("inf") > first["psnr_vs_largest@256"]
    # PSNR at a common size, recomputed by hand: both images resized to the photo's aspect at long side 256
    photo = decoded.rgb.permute(1, 2, 0).numpy()
    assert photo.shape[0] > photo.shape[1]  # a portrait: the long side is the height
    h, w = 256, round(photo.shape[1] * 256 / photo.shape[0])
    expected = quality.psnr(quality.resize_to(outputs[320], h, w), quality.resize_to(photo, h, w))
    assert second["psnr@256"] == pytest.approx(expected)
    assert second["psnr_gain_db@256"] == pytest.approx(expected - first["psnr@256"])


# --------------------------------------------------------------------------- formats


def test_format_table_rows(photo):
    rows = formats.format_table(photo, formats=("png", "jpeg", "webp"), quality=90, repeats=1)
    assert [r["format"] for r in rows] == ["png", "jpg", "webp"]
    png, jpg, _ = rows
    rgb = torch.from_numpy(photo).permute(2, 0, 1).contiguous()
    assert png["bytes"] == len(encode_image(rgb, format="png"))
    assert png["psnr"] == float("inf") and png["max_abs_error"] == 0 and png["quality"] is None
    assert jpg["bytes"] == len(encode_image(rgb, format="jpg", quality=90))
    assert 25 < jpg["psnr"] < float("inf")
    assert jpg["bits_per_pixel"] == pytest.approx(8 * jpg["bytes"] / (96 * 72))
    for row in rows:
        assert row["encode_ms"] > 0 and row["decode_ms"] > 0


# --------------------------------------------------------------------------- batching


def test_batch_difference_is_zero_on_real_photos(cartoonizer, shared_images):
    paths = [shared_images / n for n in ("wb_actress2.jpg", "wb_party5.jpg", "wb_mountain4.jpg")]
    images = batching.square_photos(paths, 256)
    assert [im.shape for im in images] == [(256, 256, 3)] * 3
    rows = batching.batch_difference(cartoonizer, images, CartoonConfig(resolution=256), batch_sizes=(1, 4))
    assert [r["batch"] for r in rows] == [1, 4]
    for row in rows:
        assert row["max_abs_diff"] <= 1 and row["changed_fraction"] < 0.01


class _OffByOneInBatches:
    """A Cartoonizer whose batched results are one grey level brighter: the measurement must see it."""

    def __init__(self, inner):
        self._inner = inner

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def process_many(self, images, config, *, max_batch=8):
        results = self._inner.process_many(images, config, max_batch=max_batch)
        for r in results:
            r.rgb = (r.rgb.int() + 1).clamp(max=255).to(torch.uint8)
        return results


def test_batch_difference_sees_a_difference(cartoonizer):
    images = [np.full((64, 64, 3), 10 * i, np.uint8) for i in range(1, 3)]
    config = CartoonConfig(resolution=256, style_weight=0.0)  # weight 0: the resized photo, no network
    rows = batching.batch_difference(_OffByOneInBatches(cartoonizer), images, config, batch_sizes=(2,))
    assert rows == [{"batch": 2, "max_abs_diff": 1, "mean_abs_diff": 1.0, "changed_fraction": 1.0}]
    with pytest.raises(ValueError, match="one shape"):
        batching.batch_difference(cartoonizer, [images[0], np.zeros((64, 32, 3), np.uint8)], config)


# --------------------------------------------------------------------------- bench: peak memory


def test_peak_memory_counts_a_known_allocation():
    with PeakMemory(torch.device("cpu")) as memory:
        block = np.ones(200 * 2 ** 20 // 8)  # 200 MB, every page written
        del block
    if memory.mb is None:
        pytest.skip("no /proc/self/clear_refs here")
    assert 190 < memory.mb < 260


def test_model_grid_reports_peak_memory(cartoonizer):
    result = model_grid(cartoonizer, [256], [1, 2], repeats=1, variant="default")
    assert [(r["resolution"], r["batch"]) for r in result["rows"]] == [(256, 1), (256, 2)]
    for row in result["rows"]:
        assert row["peak_memory_mb"] is not None and row["peak_memory_mb"] > 0
        assert row["psnr_vs_fp32"] is None and row["images_per_second"] > 0
    table = format_table(result)
    assert "peak memory (MB)" in table and f"| {result['rows'][1]['peak_memory_mb']:.0f} |" in table
    old = {k: v for k, v in result["rows"][0].items() if k != "peak_memory_mb"}  # JSON written before the field
    assert "| default | model | 256 | 1 |" in format_table({**result, "rows": [old]})


def test_png_level_table_matches_the_package_encoder_at_its_level():
    import io

    from PIL import Image

    from cartoonkit.analysis.formats import png_level_table
    from cartoonkit.imageencode import _PNG_COMPRESS_LEVEL, encode_image

    image = np.tile(np.arange(64, dtype=np.uint8)[:, None, None] * 4, (1, 96, 3))  # smooth: compresses well
    image[::7, ::5] = 255  # and some detail
    rows = png_level_table(image, levels=(0, _PNG_COMPRESS_LEVEL, 9), repeats=1)
    assert [r["level"] for r in rows] == [0, _PNG_COMPRESS_LEVEL, 9]
    assert rows[0]["bytes"] > rows[1]["bytes"] >= rows[2]["bytes"]  # level 0 stores, 9 squeezes hardest
    ours = encode_image(torch.from_numpy(image).permute(2, 0, 1).contiguous(), format="png")
    assert rows[1]["bytes"] == len(ours)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(ours))), image)
