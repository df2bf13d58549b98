"""``Cartoonizer``: the public object that ties decoding, the engine and encoding together."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from . import imagetypes
from .config import CartoonConfig
from .engine import Engine, EngineOptions, bucket_shape, with_compiled_bucket
from .errors import ConfigError
from .fileio import write_atomic
from .imageio import DecodedImage, ImageLimits, encode_image, read_image
from .preprocessing import denoise, finish, target_size
from .transforms import blend_to_uint8, pad_to_shape, resize_long_side, resize_to
from .weights import DEFAULT_MODEL, ensure_installed, load_network
from .weights.registry import resolve_pair

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
                 precision: str = "auto", compile: bool = False, engine_options: EngineOptions | None = None,
                 head_model: str | None = None,
                 models_dir: str | os.PathLike | None = None, limits: ImageLimits = ImageLimits()):
        """``precision``: ``auto`` (float16 on CUDA, bfloat16 on CPUs with fast bf16, else float32),
        ``float32``, ``bfloat16``, ``float16`` or ``int8`` (CPU only, always compiled);
        ``compile``: ``torch.compile`` the network (pays off over
        many photos of few shapes; photos are then padded to 64-pixel buckets, so shapes repeat);
        ``engine_options`` sets every engine switch at once; ``head_model``: the model for faces in
        compound mode (default: ``model``, which then draws the background; a DCT-Net folder imported as
        ``NAME`` brings its own head model)."""
        options = engine_options or with_compiled_bucket(EngineOptions(precision=precision, compile=compile))
        self._models_dir = Path(models_dir) if models_dir else None
        model, pair_head = resolve_pair(model, self._models_dir)  # a DCT-Net folder import: bg + head
        head_model = head_model or pair_head
        network, self.model_card = load_network(model, models_dir=self._models_dir)
        self.engine = Engine(network, device, options)
        self.limits = limits
        self.head_model = head_model
        if head_model is not None:
            ensure_installed(head_model, self._models_dir)  # fail now, not at the first face
        self._head: Engine | None = None
        self._detector = None  # created on the first compound-mode photo (OpenCV's detector is per thread)

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
            photo, alpha = self.preprocess(decoded, config)
        rgb = self.cartoonize_batch([photo], config.style_weight, timings)[0]
        rgb, notes = self.add_heads([photo], [rgb], config, [timings])[0]
        with _timed(timings, "postprocess", sync):
            rgb = self.finish(rgb, config)
        return CartoonResult(rgb=rgb, alpha=alpha, name=decoded.name, timings=timings,
                             notes=decoded.notes + tuple(notes))

    def add_heads(self, photos: Sequence[torch.Tensor], backgrounds: Sequence[torch.Tensor], config: CartoonConfig,
                  timings: Sequence[dict[str, float]] | None = None,
                  max_batch: int = 8) -> list[tuple[torch.Tensor, list[str]]]:
        """Compound mode's second stage: cartoon heads, aligned and pasted over each background.

        ``photos`` are preprocessed photos and ``backgrounds`` their full-image results; the faces of all
        of them go through the head network together, ``max_batch`` crops per call. In ``full`` mode (or
        at style weight 0) the backgrounds come back unchanged. Adds ``detect``, ``align``,
        ``head_network`` and ``paste`` to each photo's ``timings``; the notes say how many faces were used.
        """
        if config.mode != "compound" or config.style_weight == 0:
            return [(background, []) for background in backgrounds]
        from .compound import compose_many

        composed = compose_many(list(photos), list(backgrounds), self._head_engine(), self._face_detector(),
                                config.style_weight, config.face_size, max_batch)
        results = []
        for i, ((rgb, heads), background) in enumerate(zip(composed, backgrounds, strict=True)):
            if timings is not None:
                for stage, seconds in heads.timings.items():
                    timings[i][stage] = timings[i].get(stage, 0.0) + seconds
            results.append((rgb.to(background.device), heads.notes))
        return results

    def _head_engine(self) -> Engine:
        """The head network: the background's own engine unless ``head_model`` names another model."""
        if self._head is None:
            if self.head_model in (None, self.model_card.name):
                self._head = self.engine
            else:
                network, _ = load_network(self.head_model, models_dir=self._models_dir)
                self._head = Engine(network, self.engine.device, self.engine.options)
        return self._head

    def _face_detector(self):
        if self._detector is None:
            from .faces import FaceDetector

            self._detector = FaceDetector(model_path=None)
        return self._detector

    def preprocess(self, decoded: DecodedImage, config: CartoonConfig) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The network's input: ``uint8`` photo ``(3, H, W)`` on the engine's device, resized to
        ``config.network_long_side`` (``resolution`` unless ``upscale``) and denoised if asked; alpha
        ``(1, H, W)`` at the output size where it was (or ``None``). The first step of :meth:`process`,
        exposed for batch work; :meth:`finish` is the last."""
        photo = resize_long_side(decoded.rgb.to(self.engine.device, non_blocking=True), config.network_long_side)
        photo = denoise(photo, config.denoise)
        alpha = decoded.alpha
        if alpha is not None:
            alpha = resize_to(alpha, target_size(photo, config))
        return photo, alpha

    def finish(self, rgb: torch.Tensor, config: CartoonConfig) -> torch.Tensor:
        """A network-size result (after :meth:`cartoonize_batch` / :meth:`add_heads`) -> the output:
        resized back to ``resolution`` if ``upscale`` enlarged it, beautified if asked."""
        return finish(rgb, config)

    def bucket_of(self, photo: torch.Tensor) -> tuple[int, int]:
        """The padded shape a preprocessed photo runs at; photos with the same bucket batch together."""
        return bucket_shape(photo.shape[-2], photo.shape[-1], self.engine.options.bucket)

    def cartoonize_batch(self, photos: Sequence[torch.Tensor], style_weight: float,
                         timings: dict[str, float] | None = None) -> list[torch.Tensor]:
        """Cartoonize preprocessed photos (see :meth:`preprocess`) that share one :meth:`bucket_of` shape,
        in one engine call; returns the blended ``uint8`` RGB ``(3, H, W)`` of each, on the engine's device.

        Each photo is padded to the bucket shape exactly as the engine pads a photo on its own (edge
        replication, bottom and right) and cropped back afterwards, so its result does not depend on
        what else is in the batch.
        """
        timings = {} if timings is None else timings
        if not photos:
            return []
        if style_weight == 0:
            return list(photos)
        shapes = {self.bucket_of(p) for p in photos}
        if len(shapes) != 1:
            raise ValueError(f"cartoonize_batch needs photos of one bucket shape, got {sorted(shapes)}")
        (height, width), = shapes
        sync = self.engine.device.type == "cuda"
        with _timed(timings, "network", sync):
            batch = torch.stack([pad_to_shape(p, height, width) for p in photos])
            cartoons = self.engine(batch)
        with _timed(timings, "postprocess", sync):
            return [blend_to_uint8(p, cartoons[i, :, :p.shape[-2], :p.shape[-1]].clamp(0, 255), style_weight)
                    for i, p in enumerate(photos)]

    def process_many(self, images: Sequence[DecodedImage], config: CartoonConfig, *,
                     max_batch: int = 8) -> list[CartoonResult]:
        """Cartoonize several decoded images, batching those of one bucket shape (up to ``max_batch`` per
        engine call). Results come back in input order and equal :meth:`process` on each image alone."""
        if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
            raise ConfigError(f"max_batch={max_batch!r}: must be a positive integer")
        sync = self.engine.device.type == "cuda"
        prepared, groups = [], {}
        for index, decoded in enumerate(images):
            timings: dict[str, float] = {}
            with _timed(timings, "preprocess", sync):
                photo, alpha = self.preprocess(decoded, config)
            prepared.append((photo, alpha, timings))
            groups.setdefault(self.bucket_of(photo), []).append(index)
        rgbs: list[torch.Tensor | None] = [None] * len(prepared)
        for indices in groups.values():
            for start in range(0, len(indices), max_batch):
                chunk = indices[start:start + max_batch]
                shared: dict[str, float] = {}
                outputs = self.cartoonize_batch([prepared[i][0] for i in chunk], config.style_weight, shared)
                for i, rgb in zip(chunk, outputs, strict=True):
                    rgbs[i] = rgb
                    for stage, seconds in shared.items():  # a batch's time, shared out evenly
                        prepared[i][2][stage] = seconds / len(chunk)
        composed = self.add_heads([p for p, _, _ in prepared], rgbs, config, [t for _, _, t in prepared], max_batch)
        results = []
        for decoded, (rgb, notes), (_, alpha, timings) in zip(images, composed, prepared, strict=True):
            with _timed(timings, "postprocess", sync):
                rgb = self.finish(rgb, config)
            results.append(CartoonResult(rgb=rgb, alpha=alpha, name=decoded.name, timings=timings,
                                         notes=decoded.notes + tuple(notes)))
        return results

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
