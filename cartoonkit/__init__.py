"""cartoonkit: fast, exact cartoonization of photos of people (White-box / DCT-Net UNet generator).

``import cartoonkit`` is light: the settings and errors are plain Python, and the parts that need torch
(:class:`Cartoonizer`, :class:`CartoonResult`) load on first use, so the command line answers ``--help``
before torch is imported.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .config import CartoonConfig  # noqa: E402
from .errors import (  # noqa: E402
    CartoonkitError,
    ConfigError,
    IntegrityError,
    InvalidImageError,
    ModelError,
    OutputError,
    WeightImportError,
)
from .options import EngineOptions  # noqa: E402

__all__ = ["Cartoonizer", "CartoonResult", "CartoonConfig", "CartoonkitError", "ConfigError", "EngineOptions",
           "IntegrityError", "InvalidImageError", "ModelError", "OutputError", "WeightImportError", "__version__"]

_LAZY = {"Cartoonizer": "pipeline", "CartoonResult": "pipeline"}


def __getattr__(name: str):
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
