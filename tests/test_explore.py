"""cartoonkit.analysis.explore: before/after pictures and the settings sliders of notebook 01."""

from __future__ import annotations

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
    ui = explore.settings_explorer(cartoonizer, photo, resolutions=(256, 320))
    names = [w.description for w in ui.kwargs_widgets]
    assert names == ["style weight", "resolution", "upscale", "denoise kernel", "beautify"]
    assert ui.result is None and ui.kwargs["resolution"] == 256  # rendered once on creation (show returns None)
    ui.kwargs_widgets[3].value = 3  # denoise: the function runs again with the new value
    assert ui.kwargs["denoise"] == 3
