"""Where cartoonkit keeps converted models and finds the source files it converts.

Environment variables win over defaults, so a shared machine or CI can point every process at
one place:

* ``CARTOONKIT_MODELS``: folder of converted models (safetensors + JSON card). Default: the
  checkout's ``models/`` when running from a clone, else ``~/.cache/cartoonkit/models``.
* ``CARTOONKIT_ASSETS``: folder holding original weight files (e.g. the ``.tflite``) to import
  from instead of downloading. Default: ``<shared>/models``, if present.
* ``CARTOONKIT_SHARED``: the project's shared data (``models/``, ``images/``, ``videos/``). Default:
  ``../shared`` beside the checkout. A machine the checkout is copied to without it (the GPU check)
  points this at a copy.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def project_root() -> Path | None:
    """The git checkout this package runs from, or ``None`` for an installed wheel."""
    root = PACKAGE_DIR.parent
    return root if (root / "pyproject.toml").is_file() else None


def models_dir() -> Path:
    if env := os.environ.get("CARTOONKIT_MODELS"):
        return Path(env).expanduser()
    root = project_root()
    if root is not None:
        return root / "models"
    return Path.home() / ".cache" / "cartoonkit" / "models"


def shared_dir() -> Path | None:
    """The shared data folder: ``$CARTOONKIT_SHARED``, else ``../shared`` beside the checkout (``None`` for a wheel)."""
    if env := os.environ.get("CARTOONKIT_SHARED"):
        return Path(env).expanduser()
    root = project_root()
    return root.parent / "shared" if root is not None else None


def asset_dirs() -> list[Path]:
    """Folders searched, in order, for local copies of source weight files."""
    dirs = []
    if env := os.environ.get("CARTOONKIT_ASSETS"):
        dirs.append(Path(env).expanduser())
    shared = shared_dir()
    if shared is not None:
        dirs.append(shared / "models")
    return [d for d in dirs if d.is_dir()]


def shared_images_dir() -> Path | None:
    """``<shared>/images``: real photos for tests and demos, when present."""
    shared = shared_dir()
    candidate = shared / "images" if shared is not None else None
    return candidate if candidate is not None and candidate.is_dir() else None


def cache_dir() -> Path:
    return Path(os.environ.get("CARTOONKIT_CACHE", Path.home() / ".cache" / "cartoonkit")).expanduser()
