"""The landing page: what the tool does, at once, before anything is uploaded."""

from __future__ import annotations

import pytest

from cartoonkit import paths

st_testing = pytest.importorskip("streamlit.testing.v1")


def test_first_screen_explains_shows_an_example_and_the_ways_in(models_dir):
    from cartoonkit.dashboard import cartoonize_page

    at = st_testing.AppTest.from_file(str(paths.project_root() / "streamlit_app.py"), default_timeout=120).run()
    assert not at.exception
    text = " ".join(m.value for m in at.markdown)
    assert cartoonize_page.INTRO in text
    assert all(way in text for way in ("upload", "camera", "sample portraits"))
    before, after = cartoonize_page.landing_example()
    assert before.shape == after.shape and max(after.shape[:2]) == cartoonize_page.LANDING_RESOLUTION
    assert abs(after.astype(int) - before.astype(int)).mean() > 5   # a cartoon, not the photo again
    assert at.toggle(key="use_camera").value is False                # the camera only when asked for
