"""Transforms between decoded photos and the network, against obvious references."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cartoonkit.transforms import (
    blend_to_uint8,
    network_to_rgb_float,
    output_size,
    pad_to_multiple,
    resize_long_side,
    resize_to,
    rgb_uint8_to_network,
)


@pytest.mark.parametrize("hw,long_side,expected", [
    ((1000, 500), 1024, (1024, 512)), ((500, 1000), 256, (128, 256)), ((300, 300), 257, (257, 257)),
    ((1, 100000), 256, (1, 256)), ((3, 2), 4096, (4096, 2731))])
def test_output_size_keeps_aspect_and_long_side(hw, long_side, expected):
    assert output_size(*hw, long_side) == expected


def test_resize_gives_exact_size_and_keeps_dtype():
    image = torch.randint(0, 256, (3, 301, 517), dtype=torch.uint8)
    out = resize_long_side(image, 258)
    assert out.shape == (3, 150, 258) and out.dtype == torch.uint8
    assert resize_long_side(image, 517) is image


@pytest.mark.parametrize("h,w", [(5, 7), (8, 8), (1, 2), (9, 12)])
def test_pad_to_multiple_only_extends_bottom_right_by_replication(h, w):
    x = torch.randn(2, 3, h, w)
    padded = pad_to_multiple(x, 4)
    assert padded.shape[-2] % 4 == 0 and padded.shape[-1] % 4 == 0
    assert padded.shape[-2] - h < 4 and padded.shape[-1] - w < 4
    torch.testing.assert_close(padded[..., :h, :w], x)
    expected = x.numpy()
    expected = np.pad(expected, ((0, 0), (0, 0), (0, padded.shape[-2] - h), (0, padded.shape[-1] - w)), mode="edge")
    np.testing.assert_array_equal(padded.numpy(), expected)


def test_network_input_is_bgr_in_minus_one_one():
    rgb = torch.tensor([255, 0, 128], dtype=torch.uint8).view(1, 3, 1, 1)
    x = rgb_uint8_to_network(rgb)
    expected = np.array([128, 0, 255]) / 127.5 - 1  # B, G, R
    np.testing.assert_allclose(x.flatten().numpy(), expected, atol=1e-6)
    np.testing.assert_allclose(network_to_rgb_float(x).flatten().numpy(), [255, 0, 128], atol=1e-4)


def test_blend_reference_and_exact_endpoints():
    photo = torch.randint(0, 256, (3, 4, 5), dtype=torch.uint8)
    cartoon = torch.rand(3, 4, 5) * 300 - 20  # network output may leave [0, 255]
    assert torch.equal(blend_to_uint8(photo, cartoon, 0.0), photo)
    for w in (0.25, 0.75, 1.0):
        expected = np.clip(np.round(photo.numpy() * (1 - w) + cartoon.numpy() * w), 0, 255)
        got = blend_to_uint8(photo, cartoon, w).numpy().astype(np.int32)
        assert np.abs(got - expected).max() <= 1  # float rounding at exact .5 may differ by one level


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape, size", [((3, 97, 130), (48, 64)), ((3, 40, 31), (123, 95)), ((2, 3, 64, 64), (64, 17)),
                                         ((1, 9, 12), (5, 5)), ((3, 300, 200), (1024, 683))])
def test_resize_to_is_torchvisions_resize(shape, size, dtype):
    """The reference is torchvision's own antialiased bilinear resize, which the package no longer imports."""
    from torchvision.transforms.v2 import functional as TF

    generator = torch.Generator().manual_seed(sum(shape))
    image = torch.randint(0, 256, shape, generator=generator, dtype=torch.uint8).to(dtype)
    expected = TF.resize(image, list(size), interpolation=TF.InterpolationMode.BILINEAR, antialias=True)
    ours = resize_to(image, size)
    assert ours.dtype == expected.dtype and ours.shape == expected.shape
    assert torch.equal(ours, expected)
    if image.dim() == 3:  # a channels_last view, as a decoded HWC photo permuted to CHW is
        hwc = image.permute(1, 2, 0).contiguous().permute(2, 0, 1)
        assert torch.equal(resize_to(hwc, size), TF.resize(hwc, list(size), antialias=True))
