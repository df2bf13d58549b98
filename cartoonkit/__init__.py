"""cartoonkit: fast, exact cartoonization of photos of people (White-box / DCT-Net UNet generator)."""

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
from .pipeline import Cartoonizer, CartoonResult  # noqa: E402

__all__ = ["Cartoonizer", "CartoonResult", "CartoonConfig", "CartoonkitError", "ConfigError", "IntegrityError",
           "InvalidImageError", "ModelError", "OutputError", "WeightImportError", "__version__"]
