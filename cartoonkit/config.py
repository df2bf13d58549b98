"""All user settings in one frozen, validated dataclass.

A bad value raises :class:`~cartoonkit.errors.ConfigError` naming the setting, the value and
what is allowed, at creation time, before any work starts.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

from .errors import ConfigError
from .imageio import normalise_format

MIN_RESOLUTION = 256
MAX_RESOLUTION = 4096
MODES = ("full", "compound")
MIN_FACE_SIZE, MAX_FACE_SIZE = 128, 1024
MIN_UPSCALE, MAX_UPSCALE = 1.0, 2.0
DENOISE_KERNELS = (0, 3, 5, 7)


def _require_range(name: str, value, low, high, kind: type) -> None:
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ConfigError(f"{name}={value!r}: must be a {kind.__name__} between {low} and {high}")
    if not low <= value <= high:
        raise ConfigError(f"{name}={value!r}: out of range, allowed {low} to {high}")


@dataclass(frozen=True)
class CartoonConfig:
    """How one photo is cartoonized and saved.

    style_weight: 0 gives the (resized) photo back, 1 the full model output, in between a blend.
    resolution:   long side of the output in pixels; the aspect ratio is kept.
    format:       file format when writing (``png`` keeps transparency, ``jpg``, ``webp``).
    quality:      JPEG/WEBP quality, 1 (smallest) to 100 (best).
    mode:         ``full`` (the whole photo through one network) or ``compound`` (a background pass plus
                  one aligned pass per face, pasted back).
    face_size:    side of the aligned head crop in compound mode (multiple of 4).
    upscale:      the network runs at ``resolution * upscale`` (long side) and its result is resized back
                  down to ``resolution``; 1 (default) runs it at the output size. 1 to 2.
    denoise:      Gaussian blur of the photo before the network, kernel size 3, 5 or 7 (sigma as OpenCV
                  derives it from the size); 0 (default) is off.
    beautify:     strength, 0 (default, off) to 1, of an edge-preserving bilateral smoothing of the result.
    """

    style_weight: float = 0.75
    resolution: int = 1024
    format: str = "png"
    quality: int = 95
    mode: str = "full"
    face_size: int = 512
    upscale: float = 1.0
    denoise: int = 0
    beautify: float = 0.0

    def __post_init__(self) -> None:
        # Accept numpy scalars and ints where a float is meant, but never bools or strings.
        for name, kind, cast in (("style_weight", numbers.Real, float), ("resolution", numbers.Integral, int),
                                 ("quality", numbers.Integral, int), ("face_size", numbers.Integral, int),
                                 ("upscale", numbers.Real, float), ("denoise", numbers.Integral, int),
                                 ("beautify", numbers.Real, float)):
            value = getattr(self, name)
            if isinstance(value, kind) and not isinstance(value, bool):
                object.__setattr__(self, name, cast(value))
        _require_range("style_weight", self.style_weight, 0.0, 1.0, float)
        _require_range("resolution", self.resolution, MIN_RESOLUTION, MAX_RESOLUTION, int)
        _require_range("quality", self.quality, 1, 100, int)
        object.__setattr__(self, "format", normalise_format(self.format))
        if self.mode not in MODES:
            raise ConfigError(f"mode={self.mode!r}: unknown, allowed {', '.join(MODES)}")
        _require_range("face_size", self.face_size, MIN_FACE_SIZE, MAX_FACE_SIZE, int)
        if self.face_size % 4:
            raise ConfigError(f"face_size={self.face_size!r}: must be a multiple of 4")
        _require_range("upscale", self.upscale, MIN_UPSCALE, MAX_UPSCALE, float)
        if isinstance(self.denoise, bool) or self.denoise not in DENOISE_KERNELS:
            raise ConfigError(f"denoise={self.denoise!r}: allowed kernel sizes {', '.join(map(str, DENOISE_KERNELS))}"
                              " (0 = off)")
        _require_range("beautify", self.beautify, 0.0, 1.0, float)

    @property
    def network_long_side(self) -> int:
        """The long side, in pixels, the network runs at: ``resolution`` times ``upscale``."""
        return round(self.resolution * self.upscale)
