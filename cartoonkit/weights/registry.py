"""The catalogue of known models, and the one way their files arrive: find, fetch, verify, install.

Every file cartoonkit knows how to get is a :class:`ModelSpec` in :data:`KNOWN_MODELS`, whatever
its kind: a cartoon ``"network"`` (converted into a stored safetensors model) or a
``"face-detector"`` (YuNet, an ``.onnx`` used as it is, cached in the models folder).

:func:`fetch` is the single path by which such a file arrives: from a local copy when one is
present (``$CARTOONKIT_ASSETS``, then ``models/`` of the shared folder: ``../shared`` beside the checkout or
``$CARTOONKIT_SHARED``), otherwise
downloaded from its public URL; either way its sha256 must match the catalogue before the file
is used. A local copy that does not match raises :class:`~cartoonkit.errors.IntegrityError`
(it is never silently replaced by a download).

Writing models lives here too (:func:`import_model`, :func:`import_dctnet_dir`); the importer
modules (``tflite_import``, ``graphdef_import``) only read files.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from tqdm.auto import tqdm

from .. import paths
from ..errors import IntegrityError, ModelError, WeightImportError
from .graphdef_import import find_dctnet_pair, read_graphdef, read_graphdef_weights
from .store import ModelCard, installed_cards, read_card, save_model, sha256_file
from .tflite_import import read_tflite_weights

log = logging.getLogger(__name__)

NON_COMMERCIAL = "CC BY-NC-SA 4.0 (non-commercial use only)"

NETWORK = "network"
FACE_DETECTOR = "face-detector"


@dataclass(frozen=True)
class ModelSpec:
    """A file cartoonkit knows how to fetch; ``kind`` says what it is used as.

    ``kind="network"``: converted into a stored cartoon model; ``kind="face-detector"``: the
    file itself is the model, kept under ``filename`` in the models folder.
    """

    name: str
    style: str
    filename: str
    url: str
    sha256: str
    licence: str
    source_format: str
    description: str
    kind: str = NETWORK


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
        ModelSpec(
            name="yunet",
            style="face-detector",
            filename="face_detection_yunet_2026may.onnx",
            url="https://github.com/opencv/opencv_zoo/raw/main/models/face_detection_yunet/"
                "face_detection_yunet_2026may.onnx",
            sha256="ebafce4e3c118d6554634be5c27ab333b4c047a9a8c3faf1d7cf93101c22f0f0",
            licence="MIT",
            source_format="onnx",
            description="YuNet face detector (OpenCV Zoo), boxes + 5 landmarks, for cv2.FaceDetectorYN",
            kind=FACE_DETECTOR,
        ),
    ]
}


# Importers by source format: path -> numpy state dict in PyTorch layout.
IMPORTERS = {"tflite": read_tflite_weights, "graphdef": read_graphdef_weights}


def _names(kind: str) -> str:
    return ", ".join(s.name for s in KNOWN_MODELS.values() if s.kind == kind)


def _known(name: str, kind: str) -> ModelSpec:
    """The catalogue entry ``name``, which must be of ``kind``."""
    spec = KNOWN_MODELS.get(name)
    if spec is None:
        what = "known models" if kind == NETWORK else "known face detectors"
        raise ModelError(f"unknown model {name!r}; {what}: {_names(kind)}")
    if spec.kind != kind:
        raise ModelError(f"{name!r} is a {spec.kind}, not a {kind}; known {kind}s: {_names(kind)}")
    return spec


# --------------------------------------------------------------------------- fetching and checking

def find_local_source(spec: ModelSpec) -> Path | None:
    """A local copy of ``spec``'s file in :func:`paths.asset_dirs`, or ``None``."""
    for folder in paths.asset_dirs():
        candidate = folder / spec.filename
        if candidate.is_file():
            return candidate
    return None


def fetch(spec: ModelSpec, dest: Path, *, timeout: float = 60.0) -> Path:
    """Put ``spec``'s file at ``dest``, from a local copy or a download, with its sha256 checked.

    The bytes are hashed while they are written to a temporary file beside ``dest``, which
    replaces ``dest`` only once its sha256 matches the catalogue; on any failure nothing is left
    behind. A local copy that does not match raises :class:`IntegrityError` naming it.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    local = find_local_source(spec)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{spec.name}-", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            if local is not None:
                log.info("copying %s from local copy %s", spec.name, local)
                with open(local, "rb") as src:
                    found = _copy_hashing(src, out)
                source = str(local)
            else:
                found = _download(spec.url, out, spec.filename, timeout)
                source = spec.url
        _check(source, found, spec.sha256)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def _copy_hashing(src: BinaryIO, out: BinaryIO, bar=None) -> str:
    digest = hashlib.sha256()
    while chunk := src.read(1 << 16):
        digest.update(chunk)
        out.write(chunk)
        if bar is not None:
            bar.update(len(chunk))
    return digest.hexdigest()


def _download(url: str, out: BinaryIO, label: str, timeout: float) -> str:
    """Stream ``url`` into ``out`` with a progress bar; the sha256 of what arrived."""
    log.info("downloading %s", url)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=label, leave=False) as bar:
                return _copy_hashing(response, out, bar)
    except (urllib.error.URLError, OSError) as exc:
        raise ModelError(f"cannot download {url}: {getattr(exc, 'reason', exc)}. Without network access, "
                         f"put the file in a folder and set CARTOONKIT_ASSETS to it") from exc


def _check(source: str | Path, found: str, expected: str) -> str:
    if found != expected:
        raise IntegrityError(f"{source}: sha256 is {found}, expected {expected}; the file is damaged or "
                             "not the published one")
    return found


# --------------------------------------------------------------------------- face detectors

def detector_path(name: str = "yunet", models_dir: Path | None = None) -> Path:
    """Path of the sha256-checked file of a face detector (YuNet), fetched into the models folder on first use.

    A cached copy in ``models_dir`` (default :func:`paths.models_dir`) is checked every time; a
    damaged one is removed and fetched again with :func:`fetch`, so later runs need neither
    ``../shared`` nor the network.
    """
    spec = _known(name, FACE_DETECTOR)
    models_dir = Path(models_dir) if models_dir is not None else paths.models_dir()
    cached = models_dir / spec.filename
    if cached.is_file():
        if sha256_file(cached) == spec.sha256:
            return cached
        log.warning("%s: sha256 mismatch, fetching the face detector again", cached)
        cached.unlink()
    return fetch(spec, cached)


# --------------------------------------------------------------------------- cartoon networks

def installed_models(models_dir: Path | None = None) -> list[ModelCard]:
    return installed_cards(models_dir or paths.models_dir())


def is_installed(name: str, models_dir: Path | None = None) -> bool:
    """Whether ``name`` is ready to use without fetching: a stored model, or a checked detector file."""
    models_dir = models_dir or paths.models_dir()
    spec = KNOWN_MODELS.get(name)
    if spec is not None and spec.kind == FACE_DETECTOR:
        cached = models_dir / spec.filename
        return cached.is_file() and sha256_file(cached) == spec.sha256
    return read_card(models_dir, name) is not None and (models_dir / f"{name}.safetensors").is_file()


def ensure_installed(name: str, models_dir: Path | None = None) -> ModelCard:
    """Return the card of an installed model, installing a known one on first use."""
    models_dir = models_dir or paths.models_dir()
    card = read_card(models_dir, name)
    if card is not None and (models_dir / f"{name}.safetensors").is_file():
        return card
    spec = KNOWN_MODELS.get(name)
    if spec is not None and spec.kind == NETWORK:
        return install(name, models_dir=models_dir)
    installed = [c.name for c in installed_cards(models_dir)]
    what = f"{name!r} is a {spec.kind}, not a cartoon model" if spec is not None else \
        f"model {name!r} is not installed"
    raise ModelError(f"{what} (installed: {', '.join(installed) or 'none'}; "
                     f"known: {_names(NETWORK)}). Import your own with "
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
    """Fetch (local copy or download, see :func:`fetch`), verify and convert a known network."""
    spec = _known(name, NETWORK)
    models_dir = models_dir or paths.models_dir()
    if not force and (card := read_card(models_dir, name)) is not None:
        return card
    with tempfile.TemporaryDirectory(prefix="cartoonkit-download-") as tmp:
        source = fetch(spec, Path(tmp) / spec.filename)
        return import_model(source, name=name, style=spec.style, licence=spec.licence,
                            expected_sha256=spec.sha256, models_dir=models_dir, source=spec.url,
                            description=spec.description, source_format=spec.source_format)


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
    source_sha256 = sha256_file(path)
    if expected_sha256:
        _check(path, source_sha256, expected_sha256)
    source_format = source_format or detect_format(path)
    state = IMPORTERS[source_format](path)
    card = ModelCard(name=name, style=style, source=source or str(path.resolve()),
                     source_sha256=source_sha256, licence=licence, weights_sha256="",
                     source_format=source_format, description=description, role=role)
    return save_model(models_dir or paths.models_dir(), state, card)


def import_dctnet_dir(directory: str | os.PathLike, name: str, *, style: str = "custom",
                      licence: str = "unknown", models_dir: Path | None = None,
                      description: str = "") -> tuple[ModelCard, ModelCard]:
    """Import a DCT-Net directory as two models, ``NAME-head`` (role ``head``) and ``NAME-bg`` (``background``).

    Returns the two :class:`~cartoonkit.weights.store.ModelCard`\\ s, head first. Both files are
    converted before either is stored, so a bad background file leaves no half-installed pair.
    """
    head, background = find_dctnet_pair(directory)
    for path in (head, background):  # check both before storing anything
        read_graphdef_weights(path)
    cards = []
    for path, suffix, role in ((head, "head", "head"), (background, "bg", "background")):
        cards.append(import_model(path, name=f"{name}-{suffix}", style=style, licence=licence,
                                  models_dir=models_dir, source_format="graphdef", role=role,
                                  description=description or f"DCT-Net {role} generator from {path.name}"))
    return cards[0], cards[1]


def remove(name: str, models_dir: Path | None = None) -> None:
    """Delete a stored model (card and weights), or the cached file of a known face detector."""
    models_dir = models_dir or paths.models_dir()
    spec = KNOWN_MODELS.get(name)
    if spec is not None and spec.kind == FACE_DETECTOR:
        (models_dir / spec.filename).unlink(missing_ok=True)
        return
    for suffix in (".json", ".safetensors"):
        (models_dir / f"{name}{suffix}").unlink(missing_ok=True)


__all__ = ["FACE_DETECTOR", "KNOWN_MODELS", "NETWORK", "ModelSpec", "detector_path",
           "ensure_installed", "fetch", "find_local_source", "import_dctnet_dir", "import_model", "install",
           "installed_models", "is_installed", "remove", "resolve_pair"]
