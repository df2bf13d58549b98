"""The optional steps around the network (denoise, upscale, beautify) against OpenCV and through every entry point."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from cartoonkit import adjustments
from cartoonkit.config import CartoonConfig
from cartoonkit.errors import ConfigError
from cartoonkit.imageio import DecodedImage, read_image
from cartoonkit.transforms import output_size

PHOTO = "wb_london1.jpg"


def _hwc(rgb: torch.Tensor) -> np.ndarray:
    return rgb.permute(1, 2, 0).contiguous().numpy()


def _chw(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).contiguous()


@pytest.fixture(scope="module")
def photo(shared_images) -> torch.Tensor:
    return read_image(shared_images / PHOTO).rgb[:, :200, :300].contiguous()


# --------------------------------------------------------------------------- the steps against OpenCV


@pytest.mark.parametrize("kernel", [3, 5, 7])
def test_denoise_is_opencvs_gaussian_blur(photo, kernel):
    ours = _hwc(adjustments.denoise(photo, kernel)).astype(int)
    reference = cv2.GaussianBlur(_hwc(photo), (kernel, kernel), 0).astype(int)  # sigma 0: derived from the size
    assert np.abs(ours - reference).max() <= 1  # float rounding only
    assert np.abs(ours - _hwc(photo).astype(int)).max() > 10  # and it did blur


def test_denoise_zero_and_beautify_zero_are_the_identity(photo):
    assert adjustments.denoise(photo, 0) is photo
    assert adjustments.beautify(photo, 0.0) is photo


def test_beautify_blends_opencvs_bilateral_filter(photo):
    smooth = cv2.bilateralFilter(_hwc(photo), 9, 75, 75)
    assert np.array_equal(_hwc(adjustments.beautify(photo, 1.0)), smooth)
    half = _hwc(adjustments.beautify(photo, 0.5)).astype(float)
    expected = (_hwc(photo).astype(float) + smooth) / 2
    assert np.abs(half - expected).max() <= 0.5 + 1e-6


def test_finish_is_the_identity_by_default_and_resizes_back_otherwise(photo):
    assert adjustments.finish(photo, CartoonConfig(resolution=300)) is photo
    shrunk = adjustments.finish(photo, CartoonConfig(resolution=256, upscale=1.5))
    assert tuple(shrunk.shape[-2:]) == output_size(200, 300, 256)


@pytest.mark.parametrize("bad", [dict(upscale=0.5), dict(upscale=2.5), dict(denoise=2), dict(denoise=9),
                                 dict(beautify=-0.1), dict(beautify=2), dict(upscale="1.2")])
def test_bad_settings_name_the_setting(bad):
    with pytest.raises(ConfigError) as error:
        CartoonConfig(**bad)
    assert str(error.value).startswith(f"{next(iter(bad))}=")


def test_network_long_side():
    assert CartoonConfig(resolution=1000).network_long_side == 1000
    assert CartoonConfig(resolution=1000, upscale=1.2).network_long_side == 1200


# --------------------------------------------------------------------------- through the Cartoonizer


def test_upscale_runs_the_network_larger_and_returns_the_output_size(cartoonizer, photo, monkeypatch):
    seen = []
    engine_call = type(cartoonizer.engine).__call__
    monkeypatch.setattr(type(cartoonizer.engine), "__call__",
                        lambda self, x: seen.append(tuple(x.shape[-2:])) or engine_call(self, x))
    decoded = DecodedImage(rgb=photo, alpha=None, name="crop.jpg", format="array")
    plain = cartoonizer.process(decoded, CartoonConfig(resolution=256))
    larger = cartoonizer.process(decoded, CartoonConfig(resolution=256, upscale=1.5))
    assert plain.rgb.shape == larger.rgb.shape == (3, *output_size(200, 300, 256))
    assert seen[0][1] == 256 and seen[1][1] == 384  # widths: the network saw 1.5 x the pixels per side
    difference = (plain.rgb.float() - larger.rgb.float()).abs().mean().item()
    assert 0 < difference < 20  # another rendering of the same cartoon, not another picture


def test_style_weight_zero_with_denoise_returns_the_blurred_photo(cartoonizer, photo):
    decoded = DecodedImage(rgb=photo, alpha=None, name="crop.jpg", format="array")
    result = cartoonizer.process(decoded, CartoonConfig(resolution=300, style_weight=0.0, denoise=5))
    assert torch.equal(result.rgb, adjustments.denoise(photo, 5))


@pytest.mark.parametrize("height,width", [(333, 1000), (1000, 333), (517, 389), (7, 1201)])
def test_alpha_always_matches_the_output_size(cartoonizer, height, width):
    rgb = torch.randint(0, 256, (3, height, width), dtype=torch.uint8)
    alpha = torch.full((1, height, width), 200, dtype=torch.uint8)
    for upscale in (1.0, 1.2, 1.7):
        config = CartoonConfig(resolution=256, upscale=upscale, style_weight=0.0)
        result = cartoonizer.process(DecodedImage(rgb=rgb, alpha=alpha, name="x.png", format="array"), config)
        assert result.alpha.shape[-2:] == result.rgb.shape[-2:]
        assert max(result.rgb.shape[-2:]) == 256


def test_process_many_equals_process_with_every_option(cartoonizer, shared_images):
    config = CartoonConfig(resolution=256, upscale=1.25, denoise=3, beautify=0.5)
    decoded = [read_image(shared_images / name) for name in ("wb_london1.jpg", "wb_food16.jpg", "bf_3faces.png")]
    many = cartoonizer.process_many(decoded, config, max_batch=4)
    for image, result in zip(decoded, many, strict=True):
        assert torch.equal(result.rgb, cartoonizer.process(image, config).rgb), image.name


def test_cli_run_and_batch_take_the_options(tmp_path, shared_images, models_dir, capsys):
    from cartoonkit.cli import main

    src = tmp_path / "in"
    src.mkdir()
    (src / PHOTO).write_bytes((shared_images / PHOTO).read_bytes())
    options = ["--resolution", "256", "--device", "cpu", "--upscale", "1.2", "--denoise", "3", "--beautify", "0.4"]
    assert main(["run", str(src / PHOTO), "-o", str(tmp_path / "run"), *options]) == 0
    assert main(["batch", str(src), "-o", str(tmp_path / "batch"), *options]) == 0
    single = read_image(tmp_path / "run" / "wb_london1.png").rgb
    batched = read_image(tmp_path / "batch" / "wb_london1.png").rgb
    assert torch.equal(single, batched) and max(single.shape[-2:]) == 256
    capsys.readouterr()
    # a resumed batch with another preprocessing setting would mix two kinds of output: refused
    assert main(["batch", str(src), "-o", str(tmp_path / "batch"), *options[:-4], "--beautify", "0.4",
                 "--resume"]) == 2
    assert "denoise" in capsys.readouterr().err
