"""Quick mode for notebooks and demos: ``CARTOONKIT_QUICK=1`` shrinks sizes and repeats so every
notebook runs top to bottom on a small CPU in about a minute (the test suite sets it)."""

from __future__ import annotations

import os

import torch


def is_quick() -> bool:
    """True when ``CARTOONKIT_QUICK`` is set to anything but ``""``/``0``."""
    return os.environ.get("CARTOONKIT_QUICK", "") not in ("", "0")


def pick(quick, full):
    """``quick`` in quick mode, ``full`` otherwise: ``sizes = pick([256], [512, 1024, 2048])``."""
    return quick if is_quick() else full


def has_gpu() -> bool:
    """Whether GPU-only cells can run; they print why they skip otherwise."""
    return torch.cuda.is_available()
