"""What image files cartoonkit reads and writes, and the limits on untrusted input: no torch, no Pillow.

The command line builds its ``--help`` from these before it imports anything heavy; the codecs
themselves are in :mod:`cartoonkit.imageio`.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ConfigError

DEFAULT_MAX_PIXELS = 64_000_000
"""Largest image (width * height) accepted; checked from the header, before decoding."""

DEFAULT_MAX_FILE_BYTES = 256 * 1024 * 1024
"""Largest input file accepted; checked with ``os.stat`` before reading."""

OUTPUT_FORMATS = ("png", "jpg", "webp")
"""Formats :func:`~cartoonkit.imageio.encode_image` writes; ``"jpeg"`` is accepted as an alias of ``"jpg"``."""

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"})
"""File suffixes picked up when a folder is given as input."""

_FORMAT_ALIASES = {"jpeg": "jpg"}


@dataclass(frozen=True)
class ImageLimits:
    """Resource limits for decoding untrusted inputs (decompression bombs, huge files)."""

    max_pixels: int = DEFAULT_MAX_PIXELS
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES

    def __post_init__(self) -> None:
        for field in ("max_pixels", "max_file_bytes"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"{field} must be a positive integer, got {value!r}")


def extension_for(format: str) -> str:
    """File extension (with dot) for an output format: ``"jpeg"`` -> ``".jpg"``."""
    return "." + normalise_format(format)


def normalise_format(format: str) -> str:
    """``"JPEG"``, ``".jpg"`` -> ``"jpg"``; an unsupported format raises :class:`ConfigError`."""
    fmt = str(format).strip().lower().lstrip(".")
    fmt = _FORMAT_ALIASES.get(fmt, fmt)
    if fmt not in OUTPUT_FORMATS:
        raise ConfigError(
            f"output format {format!r} is not supported; choose one of "
            f"{', '.join(OUTPUT_FORMATS)} (or jpeg)"
        )
    return fmt
