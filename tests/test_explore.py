"""cartoonkit.analysis.explore: before/after pictures and the settings sliders of notebook 01."""

from __future__ import annotations

import io

import numpy as np
import pytest

from cartoonkit import CartoonConfig
from cartoonkit.analysis import explore


@pytest.fixture(scope="module")
def photo(shared_images):
    return shared_images / "wb_actress2.jpg"


def test_before_after(cartoonizer, photo):
    image, ms = explore.before_after(cartoonizer, photo, CartoonConfig(resolution=256))
    assert image.dtype == np.uint8 and image.shape[0] == 256
    assert image.shape[1] > 2 * 180  # two portraits side by side
    assert ms > 0


def test_sliders_render_and_rerun(cartoonizer, photo):
    from PIL import Image

    ui = explore.settings_explorer(cartoonizer, photo, resolutions=(256, 320))
    *sliders, picture, caption = ui.children
    assert [w.description for w in sliders] == ["style weight", "resolution", "upscale", "denoise kernel",
                                                "beautify"]
    first = Image.open(io.BytesIO(picture.value))  # rendered once on creation
    assert first.size[1] == 256 and "denoise=0" in caption.value
    sliders[3].value = 3  # denoise: the photo is cartoonized again with the new value
    assert "denoise=3" in caption.value
    sliders[1].value = 320
    assert Image.open(io.BytesIO(picture.value)).size[1] == 320
