"""Runs the network on a device: placement, padding to the network's size multiple, inference.

The engine sees only ``uint8`` RGB batches and gives back float RGB on the ``[0, 255]`` scale;
decoding, resizing, blending and encoding belong to the pipeline.
"""

from __future__ import annotations

import torch

from .errors import ConfigError
from .network import CartoonNetwork
from .transforms import network_to_rgb_float, pad_to_multiple, rgb_uint8_to_network


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA when present, else CPU; a named device must exist."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"device={device!r}: not a device name; use auto, cpu, cuda or cuda:N") from exc
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device={device!r}: CUDA is not available on this machine; use cpu or auto")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ConfigError(f"device={device!r}: only {torch.cuda.device_count()} CUDA device(s) present")
    elif resolved.type != "cpu":
        raise ConfigError(f"device={device!r}: unsupported device type; use auto, cpu, cuda or cuda:N")
    return resolved


class Engine:
    """One warm network on one device."""

    def __init__(self, network: CartoonNetwork, device: str | torch.device = "auto"):
        self.device = resolve_device(device)
        self.dtype = torch.float32
        self.network = network.to(self.device).eval().requires_grad_(False)

    @torch.inference_mode()
    def __call__(self, rgb: torch.Tensor) -> torch.Tensor:
        """``uint8`` RGB ``(N, 3, H, W)`` -> float RGB on ``[0, 255]`` (unclipped), on the engine's device."""
        height, width = rgb.shape[-2:]
        x = rgb_uint8_to_network(rgb.to(self.device, non_blocking=True), self.dtype)
        y = self.network(pad_to_multiple(x))
        return network_to_rgb_float(y[..., :height, :width])
