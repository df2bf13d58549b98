"""Converted models on disk: ``<name>.safetensors`` plus a ``<name>.json`` model card.

Only safetensors are ever loaded (no pickle), and only after the file's sha256 matches the one
the card recorded when the model was converted.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import IntegrityError, ModelError
from ..fileio import write_atomic

CARD_VERSION = 1


@dataclass(frozen=True)
class ModelCard:
    """What a converted model is and where it came from; stored beside its weights as JSON."""

    name: str
    style: str
    source: str            # URL or file the weights were imported from
    source_sha256: str
    licence: str
    weights_sha256: str    # of the .safetensors file, checked on every load
    source_format: str     # "tflite", "graphdef", ...
    description: str = ""
    role: str = "full"     # "full", or "head" / "background" for a compound pair
    version: int = CARD_VERSION


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def weights_path(models_dir: Path, name: str) -> Path:
    return models_dir / f"{name}.safetensors"


def card_path(models_dir: Path, name: str) -> Path:
    return models_dir / f"{name}.json"


def save_model(models_dir: Path, state_dict: dict[str, np.ndarray], card: ModelCard) -> ModelCard:
    """Write weights and card atomically; returns the card with ``weights_sha256`` filled in."""
    from safetensors.numpy import save

    data = save({k: np.ascontiguousarray(v) for k, v in state_dict.items()},
                metadata={"name": card.name, "source_sha256": card.source_sha256})
    card = dataclasses.replace(card, weights_sha256=sha256_bytes(data))
    write_atomic(weights_path(models_dir, card.name), data)
    # The card goes last: a model without its card is not installed, so a crash in between is harmless.
    write_atomic(card_path(models_dir, card.name),
                 (json.dumps(dataclasses.asdict(card), indent=2) + "\n").encode())
    return card


def read_card(models_dir: Path, name: str) -> ModelCard | None:
    path = card_path(models_dir, name)
    if not path.is_file():
        return None
    try:
        fields = json.loads(path.read_text())
        return ModelCard(**{f.name: fields[f.name] for f in dataclasses.fields(ModelCard) if f.name in fields})
    except (ValueError, TypeError, KeyError) as exc:
        raise ModelError(f"{path}: damaged model card ({exc}); reinstall the model "
                         f"with `cartoonkit models install {name} --force`") from exc


def installed_cards(models_dir: Path) -> list[ModelCard]:
    if not models_dir.is_dir():
        return []
    cards = (read_card(models_dir, p.stem) for p in sorted(models_dir.glob("*.json")))
    return [c for c in cards if c is not None and weights_path(models_dir, c.name).is_file()]


def load_state_dict(models_dir: Path, name: str) -> tuple[dict[str, torch.Tensor], ModelCard]:
    """Load float32 tensors after checking the weights' sha256 against the card."""
    from safetensors.torch import load

    card = read_card(models_dir, name)
    path = weights_path(models_dir, name)
    if card is None or not path.is_file():
        raise ModelError(f"model {name!r} is not installed in {models_dir}")
    data = path.read_bytes()
    found = sha256_bytes(data)
    if found != card.weights_sha256:
        raise IntegrityError(f"{path}: sha256 {found} does not match the model card ({card.weights_sha256}); "
                             f"the file was changed or damaged. Reinstall with "
                             f"`cartoonkit models install {name} --force`")
    tensors = load(data)
    return {k: v.float() for k, v in tensors.items()}, card
