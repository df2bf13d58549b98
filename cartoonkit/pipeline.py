"""``Cartoonizer``: the public object, composed of parts (an engine, a head engine, a face detector), with
the one per-photo chain every caller goes through.

The chain, in :meth:`Cartoonizer.process_many`, for a group of photos and one
:class:`~cartoonkit.config.CartoonConfig`::

    prepare      resize to the network size, denoise            per photo, on the engine's device
    network      photos of one bucket shape in one engine call   per group, blended by style weight
    faces        compound mode: detect, align, head network,     all faces of the group together; the one
                 paste back                                       host round trip of the chain
    postprocess  back to the output size, beautify               per photo

Single photos (``ck(photo)``, :meth:`~Cartoonizer.process`, :meth:`~Cartoonizer.cartoonize_file`), the
folder runner and the dashboard all call it; each result carries its seconds per stage.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import gpu_codecs, imagetypes, runtime
from .adjustments import denoise, finish, target_size
from .config import DEFAULT_MODEL, CartoonConfig
from .engine import Engine
from .errors import ConfigError
from .fileio import write_atomic
from .formats import ImageLimits
from .imageencode import encode_image
from .imageio import DecodedImage
from .options import EngineOptions, bucket_shape
from .settings import with_changes
from .timing import timed
from .transforms import blend_to_uint8, pad_to_shape, resize_long_side, resize_to
from .weights import ModelCard, ensure_installed, load_network, resolve_pair

FACE_STAGES = ("detect", "align", "head_network", "paste")
"""The compound mode's stages in a result's timings (the folder report sums them as ``faces``)."""


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


@dataclass(eq=False)
class NetworkInput:
    """A photo made ready for the network (:meth:`Cartoonizer.prepare`): ``uint8`` RGB ``(3, H, W)`` at the
    network's size on the engine's device, its alpha at the output size (or ``None``), and what happened so far."""

    photo: torch.Tensor
    alpha: torch.Tensor | None
    name: str
    notes: tuple[str, ...] = ()
    timings: dict[str, float] = field(default_factory=dict)


Photo = DecodedImage | NetworkInput
EngineOrFactory = Engine | Callable[[], Engine]


class Cartoonizer:
    """Turn photos into cartoons with one warm model.

    >>> ck = Cartoonizer.from_pretrained("whitebox", device="auto")
    >>> cartoon = ck("portrait.jpg", style_weight=0.75, resolution=1024)   # numpy (H, W, 3) RGB
    >>> cartoon = ck("portrait.jpg", mode="compound", upscale=1.2)          # any CartoonConfig setting

    The plain constructor takes the parts, as a diffusers pipeline does: ``engine`` (the network for the
    whole photo), ``head_engine`` (the network for faces in compound mode: an :class:`Engine`, a function that
    makes one on the first face, or ``None`` for ``engine`` itself), ``face_detector`` (an object with
    ``detect(rgb_hwc)`` like :class:`~cartoonkit.faces.FaceDetector`, or ``None`` for YuNet, made on the first
    compound photo), ``model_card`` (what ``engine`` runs, for reports) and ``limits`` for untrusted input.
    """

    def __init__(self, engine: Engine, *, head_engine: EngineOrFactory | None = None, face_detector=None,
                 model_card: ModelCard | None = None, head_model: str | None = None,
                 limits: ImageLimits = ImageLimits()):
        # Dynamo's limits matter to torch.compile only; int8 is compiled ahead of time and needs no dynamo.
        runtime.configure_torch(engine.device, compiled=engine.options.compile or engine.options.cuda_graphs)
        self.engine = engine
        self.model_card = model_card
        self.head_model = head_model
        self.limits = limits
        self._head = head_engine
        self._detector = face_detector

    @classmethod
    def from_pretrained(cls, model: str = DEFAULT_MODEL, device: str | torch.device | None = None, *,
                        precision: str | None = None, compile: bool | None = None,
                        engine_options: EngineOptions | None = None, head_model: str | None = None,
                        models_dir: str | os.PathLike | None = None,
                        limits: ImageLimits = ImageLimits()) -> Cartoonizer:
        """Load an installed model (a known one installs on first use) into a warm engine.

        ``engine_options`` sets every engine switch at once (default :class:`EngineOptions`); ``device``,
        ``precision`` (``auto``: float16 on CUDA, bfloat16 on CPUs with fast bf16, else float32; ``float32``,
        ``bfloat16``, ``float16`` or ``int8``, CPU only, always compiled) and ``compile`` override single
        ones. Compiled engines pad photos to 64-pixel buckets, so shapes repeat. ``head_model``: the model for
        faces in compound mode (default: ``model``; a DCT-Net folder imported as ``NAME`` brings its own)."""
        overrides = {name: value for name, value in (("device", device), ("precision", precision),
                                                     ("compile", compile)) if value is not None}
        options = dataclasses.replace(engine_options or EngineOptions(), **overrides)
        folder = Path(models_dir) if models_dir else None
        model, pair_head = resolve_pair(model, folder)  # a DCT-Net folder import: background + head
        head_model = head_model or pair_head
        network, card = load_network(model, models_dir=folder)
        engine = Engine(network, options)
        head_engine = None
        if head_model is not None and head_model != card.name:
            ensure_installed(head_model, folder)  # fail now, not at the first face

            def head_engine() -> Engine:
                return Engine(load_network(head_model, models_dir=folder)[0], engine.options)

        return cls(engine, head_engine=head_engine, model_card=card, head_model=head_model, limits=limits)

    @property
    def device(self) -> torch.device:
        return self.engine.device

    def with_face_detector(self, face_detector) -> Cartoonizer:
        """This cartoonizer (same engines, card and limits) with another face detector for compound mode, e.g.
        the video's :class:`~cartoonkit.video.faces.FaceTracker` around :attr:`face_detector`."""
        other = copy.copy(self)
        other._detector = face_detector
        return other

    @property
    def face_detector(self):
        """The compound mode's face detector (YuNet unless another was given; made on first use)."""
        return self._face_detector()

    # ------------------------------------------------------------------ the ways in

    def __call__(self, image: Any, config: CartoonConfig | None = None, *, output: str | None = None,
                 **settings) -> Any:
        """Cartoonize one image. ``config`` (default :class:`CartoonConfig`) with any of its fields given as
        keywords on top (``style_weight``, ``resolution``, ``mode``, ``upscale``, ...); ``output`` picks the
        result's kind (``numpy``, ``pil``, ``tensor``, ``bytes``; default: the input's kind, numpy for paths)."""
        config = with_changes(config or CartoonConfig(), settings)
        kind = imagetypes.check_output_kind(output) if output else imagetypes.kind_of(image)
        timings: dict[str, float] = {}
        with timed(timings, "decode", self.device):
            decoded = imagetypes.to_decoded(image, self.limits, self.device)
        result = self.process_many([self.prepare(decoded, config, timings)], config)[0]
        return imagetypes.from_result(result, kind, config, device=imagetypes.device_of(image))

    def process(self, decoded: DecodedImage, config: CartoonConfig = CartoonConfig()) -> CartoonResult:
        """Cartoonize one decoded image (:meth:`process_many` of one)."""
        return self.process_many([decoded], config)[0]

    def cartoonize_file(self, src: str | os.PathLike, dst: str | os.PathLike,
                        config: CartoonConfig = CartoonConfig()) -> CartoonResult:
        """Read ``src``, cartoonize, write ``dst`` atomically (no partial file on any failure). On CUDA a plain JPEG
        is decoded, and JPEG output encoded, with nvJPEG on the device (:mod:`~cartoonkit.gpu_codecs`)."""
        timings: dict[str, float] = {}
        with timed(timings, "decode", self.device):
            decoded = gpu_codecs.read_for_device(src, self.device, self.limits)
        result = self.process_many([self.prepare(decoded, config, timings)], config)[0]
        with timed(result.timings, "encode"):
            data = gpu_codecs.encode_for_device(result.rgb, result.alpha, config.format, config.quality)
        write_atomic(dst, data)
        return result

    # ------------------------------------------------------------------ the chain

    def process_many(self, photos: Sequence[Photo], config: CartoonConfig, *,
                     max_batch: int = 8) -> list[CartoonResult]:
        """Cartoonize a group of photos (decoded, or already :meth:`prepare`-d), batching those of one bucket
        shape, up to ``max_batch`` per engine call (faces too). Results come back in input order, each equal to
        the photo's result alone, with its seconds per stage: ``preprocess``, ``network`` (a batch's time
        shared out evenly), the :data:`FACE_STAGES` in compound mode, ``postprocess``."""
        if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
            raise ConfigError(f"max_batch={max_batch!r}: must be a positive integer")
        inputs = [p if isinstance(p, NetworkInput) else self.prepare(p, config) for p in photos]
        if config.style_weight == 0:  # the photo itself: no network, no faces
            rgbs = [item.photo for item in inputs]
        else:
            rgbs = self._network_stage(inputs, config.style_weight, max_batch)
            if config.mode == "compound":
                rgbs = self._face_stage(inputs, rgbs, config, max_batch)
        results = []
        for item, rgb in zip(inputs, rgbs, strict=True):
            with timed(item.timings, "postprocess", self.device):
                rgb = finish(rgb, config)  # back to the output size if upscaled, beautify
            results.append(CartoonResult(rgb=rgb, alpha=item.alpha, name=item.name, timings=item.timings,
                                         notes=item.notes))
        return results

    def prepare(self, decoded: DecodedImage, config: CartoonConfig,
                timings: dict[str, float] | None = None) -> NetworkInput:
        """The chain's first step, exposed so the folder runner can do it in its reader threads: the photo
        resized to ``config.network_long_side`` (``resolution`` unless ``upscale``) on the engine's device and
        denoised if asked; the alpha at the output size. ``timings`` (e.g. holding ``decode``) travels on."""
        timings = {} if timings is None else timings
        with timed(timings, "preprocess", self.device):
            photo = resize_long_side(decoded.rgb.to(self.device, non_blocking=True), config.network_long_side)
            photo = denoise(photo, config.denoise)
            alpha = decoded.alpha
            if alpha is not None:
                alpha = resize_to(alpha, target_size(photo, config))
        return NetworkInput(photo=photo, alpha=alpha, name=decoded.name, notes=decoded.notes, timings=timings)

    def bucket_of(self, photo: torch.Tensor) -> tuple[int, int]:
        """The padded shape a prepared photo runs at; photos with the same bucket batch together."""
        return bucket_shape(photo.shape[-2], photo.shape[-1], self.engine.bucket)

    def run_network(self, photos: Sequence[torch.Tensor], style_weight: float,
                    timings: dict[str, float] | None = None) -> list[torch.Tensor]:
        """The network step alone: prepared photos (``uint8`` ``(3, H, W)``) that share one :meth:`bucket_of`
        shape, in one engine call; returns each one's blend with its cartoon, ``uint8`` on the engine's device.

        Each photo is padded to the bucket shape exactly as the engine pads a photo on its own (edge
        replication, bottom and right) and cropped back afterwards, so its result does not depend on
        what else is in the batch.
        """
        timings = {} if timings is None else timings
        shapes = {self.bucket_of(p) for p in photos}
        if len(shapes) != 1:
            raise ValueError(f"run_network needs photos of one bucket shape, got {sorted(shapes)}")
        (height, width), = shapes
        with timed(timings, "network", self.device):
            cartoons = self.engine(torch.stack([pad_to_shape(p, height, width) for p in photos]))
        with timed(timings, "postprocess", self.device):
            return [blend_to_uint8(p, cartoons[i, :, :p.shape[-2], :p.shape[-1]].clamp(0, 255), style_weight)
                    for i, p in enumerate(photos)]

    def _network_stage(self, inputs: list[NetworkInput], style_weight: float, max_batch: int) -> list[torch.Tensor]:
        groups: dict[tuple[int, int], list[int]] = {}
        for index, item in enumerate(inputs):
            groups.setdefault(self.bucket_of(item.photo), []).append(index)
        rgbs: list[torch.Tensor | None] = [None] * len(inputs)
        for indices in groups.values():
            for start in range(0, len(indices), max_batch):
                chunk = indices[start:start + max_batch]
                shared: dict[str, float] = {}
                outputs = self.run_network([inputs[i].photo for i in chunk], style_weight, shared)
                for i, rgb in zip(chunk, outputs, strict=True):
                    rgbs[i] = rgb
                    for stage, seconds in shared.items():  # a batch's time, shared out evenly
                        inputs[i].timings[stage] = inputs[i].timings.get(stage, 0.0) + seconds / len(chunk)
        return rgbs

    def _face_stage(self, inputs: list[NetworkInput], backgrounds: list[torch.Tensor], config: CartoonConfig,
                    max_batch: int) -> list[torch.Tensor]:
        """Compound mode: cartoon heads, aligned, batched over the whole group and pasted over each background.
        OpenCV works on the host: this is the chain's one round trip off the engine's device and back."""
        from .compound import compose_many

        photos_hwc = [_to_host_hwc(item.photo) for item in inputs]
        backgrounds_hwc = [_to_host_hwc(rgb) for rgb in backgrounds]
        composed = compose_many(photos_hwc, backgrounds_hwc, self._head_engine(), self._face_detector(),
                                config.style_weight, config.face_size, max_batch)
        rgbs = []
        for item, background, (canvas, heads) in zip(inputs, backgrounds, composed, strict=True):
            for stage, seconds in heads.timings.items():
                item.timings[stage] = item.timings.get(stage, 0.0) + seconds
            item.notes = item.notes + tuple(heads.notes)
            rgbs.append(background if canvas is None else
                        torch.from_numpy(canvas).permute(2, 0, 1).contiguous().to(background.device))
        return rgbs

    def _head_engine(self) -> Engine:
        """The head network: ``head_engine`` if given (made now if it is a factory), else the engine itself."""
        if self._head is None:
            self._head = self.engine
        elif not isinstance(self._head, Engine):
            self._head = self._head()
        return self._head

    def _face_detector(self):
        if self._detector is None:  # OpenCV's detector is per thread; the chain runs in one
            from .faces import FaceDetector

            self._detector = FaceDetector()
        return self._detector


def _to_host_hwc(rgb: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(rgb.permute(1, 2, 0).cpu().numpy())
