"""The model catalogue (cartoon networks and the YuNet face detector), weight importers and the safetensors store."""

from __future__ import annotations

from pathlib import Path

from ..config import DEFAULT_MODEL
from ..network import CartoonNetwork
from .registry import (
    KNOWN_MODELS,
    ModelSpec,
    detector_path,
    ensure_installed,
    fetch,
    find_local_source,
    import_dctnet_dir,
    import_model,
    install,
    installed_models,
    is_installed,
    remove,
    resolve_pair,
)
from .store import ModelCard, load_state_dict


def load_network(name: str = DEFAULT_MODEL, *, models_dir: Path | None = None) -> tuple[CartoonNetwork, ModelCard]:
    """Install ``name`` if needed and return the float32 network on the CPU, in eval mode."""
    from .. import paths

    models_dir = models_dir or paths.models_dir()
    ensure_installed(name, models_dir)
    state, card = load_state_dict(models_dir, name)
    network = CartoonNetwork()
    network.load_state_dict(state)
    return network.eval().requires_grad_(False), card


__all__ = ["KNOWN_MODELS", "ModelCard", "ModelSpec", "detector_path", "ensure_installed", "fetch",
           "find_local_source", "import_dctnet_dir", "import_model", "install", "installed_models", "is_installed",
           "load_network", "load_state_dict", "remove", "resolve_pair"]
