"""Shared fixtures: a private models folder for the whole session, real photos, one warm Cartoonizer."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

# Before anything imports cartoonkit: converted models go to a throw-away folder, so the suite
# never depends on (or changes) the developer's models/.
_SESSION_MODELS = tempfile.mkdtemp(prefix="cartoonkit-test-models-")
os.environ["CARTOONKIT_MODELS"] = _SESSION_MODELS
_SESSION_FOLDERS = [_SESSION_MODELS]
# The dashboard's background int8 warm-up would compile for minutes inside AppTest and the browser test;
# tests/test_dashboard_warm.py turns it on where it is the subject.
os.environ["CARTOONKIT_DASHBOARD_WARMUP"] = "0"
if "CARTOONKIT_CACHE" not in os.environ:
    _SESSION_FOLDERS.append(tempfile.mkdtemp(prefix="cartoonkit-test-cache-"))
    os.environ["CARTOONKIT_CACHE"] = _SESSION_FOLDERS[-1]

import torch  # noqa: E402

from cartoonkit import paths  # noqa: E402

SHARED_MODELS = paths.shared_dir() / "models"  # ../shared, or $CARTOONKIT_SHARED (the GPU check's copy)
SHARED_IMAGES = paths.shared_dir() / "images"
TFLITE_FILE = SHARED_MODELS / "whitebox_cartoon_gan_fp16.tflite"

torch.manual_seed(0)


def pytest_sessionfinish(session, exitstatus):
    """The throw-away folders made above go with the session (they held converted models and caches)."""
    for folder in _SESSION_FOLDERS:
        shutil.rmtree(folder, ignore_errors=True)


def pytest_collection_modifyitems(config, items):
    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs a CUDA device")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def shared_images() -> Path:
    if not SHARED_IMAGES.is_dir():
        pytest.skip("../shared/images is not beside the checkout")
    return SHARED_IMAGES


@pytest.fixture(scope="session")
def tflite_file() -> Path:
    if not TFLITE_FILE.is_file():
        pytest.skip("../shared/models/whitebox_cartoon_gan_fp16.tflite is not beside the checkout")
    return TFLITE_FILE


@pytest.fixture(scope="session")
def models_dir(tflite_file) -> Path:
    """The session's models folder with ``whitebox`` installed from the shared .tflite."""
    from cartoonkit import weights

    weights.install("whitebox")
    return Path(_SESSION_MODELS)


@pytest.fixture(scope="session")
def cartoonizer(models_dir):
    from cartoonkit import Cartoonizer

    return Cartoonizer.from_pretrained(device="cpu")
