"""Known models, and installing them: find the source file, check its sha256, convert, store.

A known model is imported from a local copy when one is present (``$CARTOONKIT_ASSETS``, then
``../shared/models`` beside the checkout) and otherwise downloaded from its public URL; either
way the source's sha256 must match the registry before anything is converted.
"""

from __future__ import annotations

import logging
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from .. import paths
from ..errors import IntegrityError, ModelError, WeightImportError
from .graphdef_import import read_graphdef, read_graphdef_weights
from .store import ModelCard, installed_cards, read_card, save_model, sha256_file
from .tflite_import import read_tflite_weights

log = logging.getLogger(__name__)

NON_COMMERCIAL = "CC BY-NC-SA 4.0 (non-commercial use only)"


@dataclass(frozen=True)
class ModelSpec:
    """A model cartoonkit knows how to fetch and convert."""

    name: str
    style: str
    filename: str
    url: str
    sha256: str
    licence: str
    source_format: str
    description: str


KNOWN_MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in [
        ModelSpec(
            name="whitebox",
            style="whitebox",
            filename="whitebox_cartoon_gan_fp16.tflite",
            url="https://github.com/margaretmz/Cartoonizer-with-TFLite/raw/master/android/app/src/main/ml/"
                "whitebox_cartoon_gan_fp16.tflite",
            sha256="7ebaaf2c3e83eb8332f19b333da507aa43752d2b418df9e67808a77d8432de02",
            licence=NON_COMMERCIAL,
            source_format="tflite",
            description="White-box Cartoonization UNet generator with guided-filter head "
                        "(SystemErrorWang/White-box-Cartoonization, TFLite float16 conversion)",
        ),
    ]
}

DEFAULT_MODEL = "whitebox"

# Importers by source format: path -> numpy state dict in PyTorch layout.
IMPORTERS = {"tflite": read_tflite_weights}
IMPORTERS["graphdef"] = read_graphdef_weights


def installed_models(models_dir: Path | None = None) -> list[ModelCard]:
    return installed_cards(models_dir or paths.models_dir())


def ensure_installed(name: str, models_dir: Path | None = None) -> ModelCard:
    """Return the card of an installed model, installing a known one on first use."""
    models_dir = models_dir or paths.models_dir()
    card = read_card(models_dir, name)
    if card is not None and (models_dir / f"{name}.safetensors").is_file():
        return card
    if name in KNOWN_MODELS:
        return install(name, models_dir=models_dir)
    installed = [c.name for c in installed_cards(models_dir)]
    raise ModelError(f"model {name!r} is not installed (installed: {', '.join(installed) or 'none'}; "
                     f"known: {', '.join(KNOWN_MODELS)}). Import your own with "
                     f"`cartoonkit models import PATH --name {name}`")


def resolve_pair(name: str, models_dir: Path | None = None) -> tuple[str, str | None]:
    """``(background model, head model or None)`` for a name: an imported DCT-Net folder ``NAME`` is
    installed as ``NAME-bg`` + ``NAME-head`` and is used as that pair; any other name is itself."""
    models_dir = models_dir or paths.models_dir()
    if read_card(models_dir, name) is None and all(read_card(models_dir, f"{name}-{part}") is not None
                                                   for part in ("bg", "head")):
        return f"{name}-bg", f"{name}-head"
    return name, None


def install(name: str, *, models_dir: Path | None = None, force: bool = False) -> ModelCard:
    """Fetch (local copy or download), verify and convert a known model."""
    if name not in KNOWN_MODELS:
        raise ModelError(f"unknown model {name!r}; known models: {', '.join(KNOWN_MODELS)}")
    spec = KNOWN_MODELS[name]
    models_dir = models_dir or paths.models_dir()
    if not force and (card := read_card(models_dir, name)) is not None:
        return card
    local = find_local_source(spec)
    if local is not None:
        log.info("importing %s from local copy %s", name, local)
        return import_model(local, name=name, style=spec.style, licence=spec.licence,
                            expected_sha256=spec.sha256, models_dir=models_dir, source=spec.url,
                            description=spec.description, source_format=spec.source_format)
    with tempfile.TemporaryDirectory(prefix="cartoonkit-download-") as tmp:
        downloaded = download(spec.url, Path(tmp) / spec.filename, spec.sha256)
        return import_model(downloaded, name=name, style=spec.style, licence=spec.licence,
                            expected_sha256=spec.sha256, models_dir=models_dir, source=spec.url,
                            description=spec.description, source_format=spec.source_format)


def find_local_source(spec: ModelSpec) -> Path | None:
    for folder in paths.asset_dirs():
        candidate = folder / spec.filename
        if candidate.is_file():
            return candidate
    return None


def download(url: str, dest: Path, sha256: str, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` with a progress bar and check its sha256."""
    log.info("downloading %s", url)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(dest, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, leave=False) as bar:
                while chunk := response.read(1 << 16):
                    out.write(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, OSError) as exc:
        raise ModelError(f"cannot download {url}: {getattr(exc, 'reason', exc)}. Without network access, "
                         f"put the file in a folder and set CARTOONKIT_ASSETS to it") from exc
    _check_sha256(dest, sha256)
    return dest


def _check_sha256(path: Path, expected: str) -> str:
    found = sha256_file(path)
    if found != expected:
        raise IntegrityError(f"{path}: sha256 is {found}, expected {expected}; the file is damaged or "
                             "not the published one")
    return found


def detect_format(path: Path) -> str:
    with open(path, "rb") as f:
        head = f.read(8)
    if head[4:8] == b"TFL3":
        return "tflite"
    if Path(path).suffix.lower() == ".pb":
        read_graphdef(path)  # raises "not a TensorFlow GraphDef" unless it parses
        return "graphdef"
    raise WeightImportError(f"{path}: unrecognised weight file (expected a .tflite flatbuffer or a frozen "
                            "TensorFlow .pb GraphDef of the White-box/DCT-Net generator)")


def import_model(path: str | os.PathLike, *, name: str, style: str = "custom", licence: str = "unknown",
                 expected_sha256: str | None = None, models_dir: Path | None = None,
                 source: str | None = None, description: str = "",
                 source_format: str | None = None, role: str = "full") -> ModelCard:
    """Convert a weight file of this network into a stored safetensors model named ``name``."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such file")
    if not name or not name.replace("-", "").replace("_", "").isalnum():
        raise ModelError(f"model name {name!r}: use letters, digits, '-' and '_' only")
    source_sha256 = _check_sha256(path, expected_sha256) if expected_sha256 else sha256_file(path)
    source_format = source_format or detect_format(path)
    state = IMPORTERS[source_format](path)
    card = ModelCard(name=name, style=style, source=source or str(path.resolve()),
                     source_sha256=source_sha256, licence=licence, weights_sha256="",
                     source_format=source_format, description=description, role=role)
    return save_model(models_dir or paths.models_dir(), state, card)


def remove(name: str, models_dir: Path | None = None) -> None:
    models_dir = models_dir or paths.models_dir()
    for suffix in (".json", ".safetensors"):
        (models_dir / f"{name}{suffix}").unlink(missing_ok=True)


__all__ = ["KNOWN_MODELS", "DEFAULT_MODEL", "ModelSpec", "ensure_installed", "install", "import_model",
           "installed_models", "download", "remove"]
