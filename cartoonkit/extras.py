"""Optional extras: import one, or say which extra installs it (:class:`~cartoonkit.errors.MissingDependencyError`).

Torch-free, so that the command line and the light parts of the package (the video probe, the Ray backend, the
exporters) can check for an optional package before anything heavy is imported.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingDependencyError


def require(module: str, purpose: str, extra: str) -> ModuleType:
    """Import an optional dependency or raise :class:`MissingDependencyError` saying how to install it:
    ``purpose`` (what needs it) and ``extra`` (the pip extra, ``pip install 'cartoonkit[extra]'``)."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{purpose} needs the optional package {module!r}, which is not installed; "
            f"install it with: pip install 'cartoonkit[{extra}]'") from exc
