"""The before/after component: the page it writes holds both images and a divider that needs no network."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
from PIL import Image

from cartoonkit.dashboard import before_after


def _images(page: str) -> list[np.ndarray]:
    return [np.asarray(Image.open(io.BytesIO(base64.b64decode(data))))
            for data in re.findall(r'src="data:image/jpeg;base64,([^"]+)"', page)]


def test_page_holds_both_images_in_order_and_a_divider():
    before = np.zeros((40, 60, 3), np.uint8)
    after = np.full((40, 60, 3), 200, np.uint8)
    page = before_after.page(before, after, label_before="photo <1>", label_after="cartoon")
    shown = _images(page)
    assert [s.shape for s in shown] == [(40, 60, 3), (40, 60, 3)]
    assert np.abs(shown[0].astype(int) - 0).max() <= 2 and np.abs(shown[1].astype(int) - 200).max() <= 2
    assert 'type="range"' in page and "clip-path: inset(0 0 0 50%)" in page
    assert "photo &lt;1&gt;" in page and "photo <1>" not in page       # labels are escaped
    assert "http://" not in page and "https://" not in page            # nothing to fetch: works offline
