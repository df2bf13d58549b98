"""What the picture should be: every user setting of a cartoonization in one frozen, validated dataclass.

Each field is declared once (:func:`~cartoonkit.settings.setting`): its default, range, help text and
dashboard widget. A bad value raises :class:`~cartoonkit.errors.ConfigError` naming the setting, the value
and what is allowed, at creation time, before any work starts. How the network runs (device, precision,
compilation) is the other object, :class:`~cartoonkit.options.EngineOptions`.
"""

from __future__ import annotations

from dataclasses import dataclass

from .formats import OUTPUT_FORMATS, normalise_format
from .settings import Widget, setting, validate

DEFAULT_MODEL = "whitebox"
"""The model a photo, folder or clip is cartoonized with when none is named (``--model``); its catalogue entry
is in :mod:`cartoonkit.weights.registry`."""
MIN_RESOLUTION, MAX_RESOLUTION = 256, 4096
MODES = ("full", "compound")
MIN_FACE_SIZE, MAX_FACE_SIZE = 128, 1024
MIN_UPSCALE, MAX_UPSCALE = 1.0, 2.0
DENOISE_KERNELS = (0, 3, 5, 7)


def _lossy(config: CartoonConfig) -> bool:
    return config.format != "png"


def _compound(config: CartoonConfig) -> bool:
    return config.mode == "compound"


@dataclass(frozen=True)
class CartoonConfig:
    """How one photo is cartoonized and saved; see each field's help (``cartoonkit run --help`` prints them)."""

    style_weight: float = setting(
        0.75, float, "0 = photo, 1 = full cartoon, in between a blend", low=0.0, high=1.0,
        widget=Widget("slider", "Style weight", step=0.05))
    resolution: int = setting(
        1024, int, f"long side of the output in pixels, {MIN_RESOLUTION}-{MAX_RESOLUTION}; aspect ratio kept",
        low=MIN_RESOLUTION, high=MAX_RESOLUTION,
        widget=Widget("select", "Resolution (long side, px)", options=(512, 768, 1024, 2048)))
    format: str = setting(
        "png", str, "output format; png keeps transparency", normalise=normalise_format,
        flag_choices=(*OUTPUT_FORMATS, "jpeg"), widget=Widget("select", "Output format", options=OUTPUT_FORMATS))
    quality: int = setting(
        95, int, "JPEG/WEBP quality 1-100", low=1, high=100, affects_output=_lossy,
        widget=Widget("slider", "Quality (jpg/webp)", step=1,
                      enabled_when=lambda chosen: chosen.get("format") != "png"))
    mode: str = setting(
        "full", str, "full: the whole photo through one network; compound: plus one aligned pass per face, "
                     "pasted back (falls back to full when no face is found)", choices=MODES,
        widget=Widget("radio", "Mode"))
    face_size: int = setting(
        512, int, f"compound mode: side of the aligned head crop, {MIN_FACE_SIZE}-{MAX_FACE_SIZE}, a multiple of 4",
        low=MIN_FACE_SIZE, high=MAX_FACE_SIZE, multiple_of=4, affects_output=_compound,
        widget=Widget("slider", "Face size (compound mode, px)", step=64,
                      enabled_when=lambda chosen: chosen.get("mode") == "compound"))
    upscale: float = setting(
        1.0, float, "run the network at resolution x UPSCALE (1-2) and shrink the result back; 1 = off",
        low=MIN_UPSCALE, high=MAX_UPSCALE, widget=Widget("slider", "Upscale", step=0.1, section="Preprocessing"))
    denoise: int = setting(
        0, int, "Gaussian blur of the photo before the network, kernel size (OpenCV's weights); 0 = off",
        choices=DENOISE_KERNELS, widget=Widget("select_slider", "Denoise (blur kernel)", section="Preprocessing"))
    beautify: float = setting(
        0.0, float, "0-1: strength of an edge-preserving bilateral smoothing of the result; 0 = off",
        low=0.0, high=1.0, widget=Widget("slider", "Beautify", step=0.05, section="Preprocessing"))

    def __post_init__(self) -> None:
        validate(self)

    @property
    def network_long_side(self) -> int:
        """The long side, in pixels, the network runs at: ``resolution`` times ``upscale``."""
        return round(self.resolution * self.upscale)
