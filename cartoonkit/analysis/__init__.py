"""Measurements and pictures shared by the notebooks, the dashboard and the README.

One module per kind of question, each a set of pure functions on ``(H, W, 3)`` uint8 numpy images:

- :mod:`.figures`: side-by-side images and labelled grids.
- :mod:`.quality`: PSNR / SSIM between two images.
- :mod:`.spectra`: 2-D DCT spectra and energy per frequency band (what ``style_weight`` changes).
- :mod:`.edges`: the edge-quality metric used to judge preprocessing.
- :mod:`.formats`: file size and encode/decode time per output format.
- :mod:`.explore`: before/after for one configuration, ``ipywidgets`` sliders over the settings.
- :mod:`.walkthrough`: the naive pipeline to the fast one, one measured step at a time.
- :mod:`.video`: temporal smoothing on a clip: warping errors, what it changes, what it costs.
- :mod:`.quick`: the quick mode (``CARTOONKIT_QUICK=1``) that the test suite runs the notebooks in.
"""

from .figures import grid, side_by_side

__all__ = ["grid", "side_by_side"]
