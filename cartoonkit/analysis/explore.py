"""Try the settings by hand: a before/after picture for one configuration, and ``ipywidgets`` sliders
over the main settings (notebook 01)."""

from __future__ import annotations

import time

import numpy as np

from ..config import DENOISE_KERNELS, CartoonConfig
from ..imageio import DecodedImage, read_image
from ..transforms import resize_long_side
from .figures import side_by_side

RESOLUTIONS = (256, 384, 512, 768, 1024)


def before_after(cartoonizer, photo, config: CartoonConfig) -> tuple[np.ndarray, float]:
    """``photo`` (a path or a :class:`~cartoonkit.imageio.DecodedImage`) at the output size beside its
    cartoon under ``config``: one ``(H, W, 3)`` uint8 image, and the milliseconds
    :meth:`~cartoonkit.pipeline.Cartoonizer.process` took."""
    decoded = photo if isinstance(photo, DecodedImage) else read_image(photo)
    start = time.perf_counter()
    result = cartoonizer.process(decoded, config)
    ms = 1e3 * (time.perf_counter() - start)
    before = resize_long_side(decoded.rgb, config.resolution).permute(1, 2, 0).numpy()
    return side_by_side(before, result.rgb.permute(1, 2, 0).cpu().numpy()), ms


def settings_explorer(cartoonizer, photo, resolutions=RESOLUTIONS, resolution: int | None = None):
    """Sliders for style weight, resolution, upscale, denoise and beautify above a before/after picture;
    every change cartoonizes ``photo`` again and updates the picture and the time under it. Returns an
    ``ipywidgets.VBox`` (display it as a notebook cell's last value); it renders once on creation.
    ``resolution``: the starting output size (default: the smallest of ``resolutions``).

    The picture is an ``ipywidgets.Image`` updated in place, not output captured by an ``Output`` widget
    (``interact``): executing ``interact`` cells headless (nbclient, nbconvert) can deadlock
    (jupyter/nbconvert#1921, #2029)."""
    import io

    import ipywidgets as widgets
    from PIL import Image

    decoded = photo if isinstance(photo, DecodedImage) else read_image(photo)
    style = dict(continuous_update=False, style={"description_width": "initial"})
    sliders = {
        "style_weight": widgets.FloatSlider(value=0.75, min=0.0, max=1.0, step=0.05, description="style weight",
                                            **style),
        "resolution": widgets.SelectionSlider(options=list(resolutions), value=resolution or min(resolutions),
                                              description="resolution", **style),
        "upscale": widgets.FloatSlider(value=1.0, min=1.0, max=2.0, step=0.1, description="upscale", **style),
        "denoise": widgets.SelectionSlider(options=list(DENOISE_KERNELS), value=0, description="denoise kernel",
                                           **style),
        "beautify": widgets.FloatSlider(value=0.0, min=0.0, max=1.0, step=0.1, description="beautify", **style),
    }
    picture = widgets.Image(format="png")
    caption = widgets.Label()

    def update(_change=None):
        config = CartoonConfig(**{name: slider.value for name, slider in sliders.items()})
        image, ms = before_after(cartoonizer, decoded, config)
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG")
        picture.value = buffer.getvalue()
        caption.value = (f"style_weight={config.style_weight}, resolution={config.resolution}, "
                         f"upscale={config.upscale}, denoise={config.denoise}, beautify={config.beautify}: "
                         f"{ms:.0f} ms")

    for slider in sliders.values():
        slider.observe(update, names="value")
    update()
    return widgets.VBox([*sliders.values(), picture, caption])
