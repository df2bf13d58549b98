"""``Cartoonizer``: the public object that ties decoding, the engine and encoding together."""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from . import imagetypes
from .config import CartoonConfig
from .engine import Engine, EngineOptions
from .fileio import write_atomic
from .imageio import DecodedImage, ImageLimits, encode_image, read_image
from .transforms import blend_to_uint8, resize_long_side
from .weights import DEFAULT_MODEL, load_network

STAGES = ("decode", "preprocess", "network", "postprocess", "encode")


@dataclass
class CartoonResult:
    """One cartoonized image: ``uint8`` RGB ``(3, H, W)``, optional alpha ``(1, H, W)``, stage timings in seconds."""

    rgb: torch.Tensor
    alpha: torch.Tensor | None
    name: str
    timings: dict[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def encode(self, format: str = "png", quality: int = 95) -> bytes:
        start = time.perf_counter()
        data = encode_image(self.rgb, self.alpha, format=format, quality=quality)
        self.timings["encode"] = time.perf_counter() - start
        return data


class Cartoonizer:
    """Turn photos into cartoons with one warm model.

    >>> ck = Cartoonizer(model="whitebox", device="auto")
    >>> cartoon = ck("portrait.jpg", style_weight=0.75, resolution=1024)   # numpy (H, W, 3) RGB

    ``image`` may be a path, bytes, a numpy ``(H, W, 3)`` RGB ``uint8`` array (``(H, W, 4)`` RGBA and
    ``(H, W)`` grey work too), a PIL image or a ``uint8`` tensor ``(C, H, W)``. The result comes back
    as the same kind (a path gives a numpy array, bytes give encoded bytes) unless ``output`` names
    one of ``"numpy"``, ``"pil"``, ``"tensor"``, ``"bytes"``. Transparency is kept when the input has it.
    """

    def __init__(self, model: str = DEFAULT_MODEL, device: str | torch.device = "auto", *,
                 precision: str = "auto", engine_options: EngineOptions | None = None,
                 models_dir: str | os.PathLike | None = None, limits: ImageLimits = ImageLimits()):
        """``precision``: ``auto`` (float16 on CUDA, bfloat16 on CPUs with fast bf16, else float32),
        ``float32``, ``bfloat16`` or ``float16``; ``engine_options`` sets every engine switch at once."""
        options = engine_options or EngineOptions(precision=precision)
        network, self.model_card = load_network(model, models_dir=Path(models_dir) if models_dir else None)
        self.engine = Engine(network, device, options)
        self.limits = limits

    @property
    def device(self) -> torch.device:
        return self.engine.device

    def __call__(self, image: Any, style_weight: float = 0.75, resolution: int = 1024, *,
                 output: str | None = None, format: str = "png", quality: int = 95) -> Any:
        config = CartoonConfig(style_weight=style_weight, resolution=resolution, format=format, quality=quality)
        kind = imagetypes.check_output_kind(output) if output else imagetypes.kind_of(image)
        timings: dict[str, float] = {}
        with _timed(timings, "decode"):
            decoded = imagetypes.to_decoded(image, self.limits)
        result = self.process(decoded, config, timings)
        return imagetypes.from_result(result, kind, config, device=imagetypes.device_of(image))

    def process(self, decoded: DecodedImage, config: CartoonConfig,
                timings: dict[str, float] | None = None) -> CartoonResult:
        """Cartoonize one decoded image; ``timings`` (seconds per stage) is filled in as it goes."""
        timings = {} if timings is None else timings
        sync = self.engine.device.type == "cuda"
        with _timed(timings, "preprocess", sync):
            photo = resize_long_side(decoded.rgb.to(self.engine.device), config.resolution)
            alpha = decoded.alpha
            if alpha is not None:
                alpha = resize_long_side(alpha, config.resolution)
        with _timed(timings, "network", sync):
            cartoon = self.engine(photo[None])[0] if config.style_weight > 0 else None
        with _timed(timings, "postprocess", sync):
            rgb = photo if cartoon is None else blend_to_uint8(photo, cartoon.clamp(0, 255), config.style_weight)
        return CartoonResult(rgb=rgb, alpha=alpha, name=decoded.name, timings=timings, notes=decoded.notes)

    def cartoonize_file(self, src: str | os.PathLike, dst: str | os.PathLike,
                        config: CartoonConfig = CartoonConfig()) -> CartoonResult:
        """Read ``src``, cartoonize, write ``dst`` atomically (no partial file on any failure)."""
        timings: dict[str, float] = {}
        with _timed(timings, "decode"):
            decoded = read_image(src, limits=self.limits)
        result = self.process(decoded, config, timings)
        write_atomic(dst, result.encode(config.format, config.quality))
        return result


@contextmanager
def _timed(timings: dict[str, float], stage: str, cuda_sync: bool = False):
    start = time.perf_counter()
    yield
    if cuda_sync:
        torch.cuda.synchronize()
    timings[stage] = timings.get(stage, 0.0) + time.perf_counter() - start
