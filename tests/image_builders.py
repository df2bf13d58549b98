"""Small images built in memory for the tests (nothing binary is committed)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def pattern(height: int = 12, width: int = 20, channels: int = 3, seed: int = 0) -> np.ndarray:
    """A random, asymmetric image: every rotation/flip of it differs from the others."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(height, width, channels), dtype=np.uint8)


def encode(image: Image.Image, format: str, **options) -> bytes:
    """``image`` saved in ``format`` (Pillow's name), as bytes."""
    buffer = io.BytesIO()
    image.save(buffer, format, **options)
    return buffer.getvalue()
