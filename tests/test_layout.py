"""The host layout conversions (cartoonkit.layout) against torch's permute, the slow obvious reference, and the
encoder's per-thread in-memory file against plain BytesIO encoding."""

from __future__ import annotations

import io
import threading

import numpy as np
import pytest
import torch
from PIL import Image

from cartoonkit import imageencode
from cartoonkit.layout import chw_to_hwc, hwc_to_chw

SHAPES = [(1, 1, 3), (5, 7, 3), (17, 3, 4), (64, 48, 1), (3, 70001, 3), (0, 4, 3), (6, 5, 2), (4, 4, 6)]


@pytest.mark.parametrize("shape", SHAPES)
def test_hwc_to_chw_equals_permute(shape):
    array = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    planes = hwc_to_chw(array)
    assert planes.is_contiguous()
    assert torch.equal(planes, torch.from_numpy(array).permute(2, 0, 1).contiguous())


def test_hwc_to_chw_takes_strided_views_and_other_dtypes():
    array = np.random.default_rng(1).integers(0, 256, (9, 20, 4), dtype=np.uint8)
    view = array[1::2, ::3, :]  # neither rows nor pixels contiguous
    assert torch.equal(hwc_to_chw(view), torch.from_numpy(np.ascontiguousarray(view)).permute(2, 0, 1))
    wide = array.astype(np.uint16) * 257
    assert torch.equal(hwc_to_chw(wide), torch.from_numpy(wide).permute(2, 0, 1))
    with pytest.raises(ValueError, match=r"\(H, W, C\)"):
        hwc_to_chw(array[:, :, 0])


@pytest.mark.parametrize("shape", SHAPES)
def test_chw_to_hwc_equals_permute(shape):
    height, width, channels = shape
    tensor = torch.randint(0, 256, (channels, height, width), dtype=torch.uint8)
    array = chw_to_hwc(tensor)
    assert array.flags.c_contiguous
    np.testing.assert_array_equal(array, tensor.permute(1, 2, 0).numpy())


def test_chw_to_hwc_stacks_several_tensors_and_cropped_views():
    rgb = torch.randint(0, 256, (3, 10, 12), dtype=torch.uint8)
    alpha = torch.randint(0, 256, (1, 10, 12), dtype=torch.uint8)
    np.testing.assert_array_equal(chw_to_hwc(rgb, alpha), torch.cat([rgb, alpha]).permute(1, 2, 0).numpy())
    crop = rgb[:, 2:7, 1:9]  # what the engine hands over after cutting the padding away
    np.testing.assert_array_equal(chw_to_hwc(crop), crop.permute(1, 2, 0).numpy())
    floats = torch.rand(3, 4, 5)
    np.testing.assert_array_equal(chw_to_hwc(floats), floats.permute(1, 2, 0).numpy())
    with pytest.raises(ValueError, match="at least one channel"):
        chw_to_hwc(torch.empty(0, 4, 4, dtype=torch.uint8))


@pytest.mark.parametrize("fmt", ["jpg", "png", "webp"])
def test_encoding_in_memory_files_gives_bytesio_bytes(fmt, monkeypatch):
    rgb = torch.randint(0, 256, (3, 40, 30), dtype=torch.uint8)
    alpha = torch.randint(0, 256, (1, 40, 30), dtype=torch.uint8)
    small = rgb[:, :5, :5].contiguous()
    images = ((rgb, alpha), (small, None), (rgb, None))
    through_files = [imageencode.encode_image(x, a, format=fmt) for x, a in images]
    monkeypatch.setattr(imageencode, "_memory_file", lambda: None)  # the plain BytesIO path
    through_bytesio = [imageencode.encode_image(x, a, format=fmt) for x, a in images]
    assert through_files == through_bytesio  # a shorter image after a longer one leaves no stale tail
    assert Image.open(io.BytesIO(through_files[1])).size == (5, 5)


def test_encoder_threads_each_get_their_own_file():
    images = [torch.full((3, 64, 64), value, dtype=torch.uint8) for value in range(0, 256, 8)]
    expected = [imageencode.encode_image(x, format="jpg") for x in images]
    got: dict[int, bytes] = {}

    def encode(indices):
        for index in indices:
            got[index] = imageencode.encode_image(images[index], format="jpg")

    threads = [threading.Thread(target=encode, args=(range(i, len(images), 4),)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [got[i] for i in range(len(images))] == expected
