"""Runs the network on a device: placement, precision, memory layout, compilation, batching.

The engine sees only ``uint8`` RGB batches and gives back float RGB on the ``[0, 255]`` scale;
decoding, resizing, blending and encoding belong to the pipeline.

Each speed-up is a switch of :class:`EngineOptions` so the benchmark can show what it buys:

* ``precision``: the generator runs in float16 (CUDA) or bfloat16 (CPUs with AVX-512 BF16 or
  AMX, through oneDNN); the guided-filter head always runs in float32, where its
  ``var + eps`` would otherwise cancel catastrophically. ``int8`` (x86 CPUs, opt-in, implies
  ``compile``): int8 convolutions calibrated once, see :mod:`cartoonkit.quantize`. ``float8`` (CUDA, compute
  capability >= 8.9, opt-in): the residual blocks' convolutions in float8 E4M3, the rest float16
  (:mod:`cartoonkit.float8`).
* ``channels_last``: NHWC tensors, the layout oneDNN and cuDNN convolutions are fastest in.
* ``compile``: inductor fuses the element-wise work around the convolutions; on the CPU ahead of time, one
  package per shape kept across processes (:mod:`cartoonkit.packaged`), on CUDA with ``torch.compile``.
* ``cuda_graphs`` (CUDA only, implies ``compile``): the compiled network is captured once per shape and
  replayed as a CUDA graph (``mode="reduce-overhead"``), which removes the per-kernel launch cost that
  dominates small batches on a fast GPU.
* ``compile_mode`` (CUDA): inductor's ``max-autotune`` (or ``max-autotune-no-cudagraphs``) for compiled engines,
  which picks among cuDNN, Triton and CUTLASS kernels per layer: minutes of compilation per shape.
* ``fused_kernels`` (CUDA, eager): the element-wise gaps between the convolutions as hand-written Triton kernels,
  one per gap, and the guided-filter head as two (:mod:`cartoonkit.fused`).
* ``bucket``: images are padded (bottom/right, cropped afterwards) up to a multiple of
  ``options.padding`` pixels (64 when compiled or on CUDA, where the short side also snaps to a small fixed
  ladder of aspect ratios, :func:`~cartoonkit.options.bucket_shape`), so photos of similar size share one shape:
  they batch together and reuse compiled graphs, CUDA graphs and cuDNN plans. The padding depends on a photo's
  own size only, never on its batch companions, so a photo's result does not depend on what else was in its batch.
* out-of-memory back-off: a batch that does not fit is split in halves and retried.

The options themselves, and the rules that read them, are in :mod:`cartoonkit.options`; process-wide
torch switches (compiled-shape limit, cuDNN autotuning) are set by :func:`cartoonkit.runtime.configure_torch`,
not here.
"""

from __future__ import annotations

import copy
import logging
import os

import torch

from .errors import ConfigError
from .hardware import cpu_supports_fast_bf16
from .network import CartoonNetwork
from .options import COMPILED_BUCKET, PRECISIONS, EngineOptions, bucket_shape, precision_name
from .transforms import network_to_rgb_float, pad_to_shape, rgb_uint8_to_network

log = logging.getLogger(__name__)

__all__ = ["COMPILED_BUCKET", "PRECISIONS", "Engine", "EngineOptions", "bucket_shape", "resolve_device",
           "resolve_precision"]


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


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    """The ``torch.dtype`` of :func:`~cartoonkit.options.precision_name` (``int8`` -> ``torch.int8``; ``float8`` ->
    ``torch.float16``, the generator's dtype around its float8 convolutions)."""
    name = precision_name(precision, device.type)
    return torch.float16 if name == "float8" else getattr(torch, name)


class Engine:
    """One warm network on one device (``options.device``)."""

    def __init__(self, network: CartoonNetwork, options: EngineOptions = EngineOptions()):
        self.device = resolve_device(options.device)
        self.options = options.resolved(self.device.type)  # "auto" made concrete: padding follows what runs
        self.dtype = resolve_precision(self.options.precision, self.device)
        if options.cuda_graphs and self.device.type != "cuda":
            raise ConfigError(f"cuda_graphs=True: needs a CUDA device, the engine is on {self.device}")
        self.float8 = self.options.precision == "float8"
        if self.float8:
            from .float8 import check_float8_device

            check_float8_device(self.device)
            if options.fused_kernels:
                raise ConfigError("precision='float8' with fused_kernels=True: the fused generator runs the residual "
                                  "convolutions itself; use one or the other")
        if options.pad_edge_channels and (self.dtype == torch.int8 or (options.compile and self.device.type == "cpu")):
            raise ConfigError("pad_edge_channels=True: for eager and CUDA engines; the CPU's compiled packages "
                              "(int8, compile) keep the network's own shapes")
        compile_mode = self._compile_mode(options)
        if options.fused_kernels:
            self._check_fused_kernels(options)
        if options.pad_edge_channels or options.fused_kernels or self.float8:
            network = copy.deepcopy(network)  # the caller's network keeps its shapes, forward and convolutions
        if options.pad_edge_channels:
            from .edge_channels import pad_edge_channels

            pad_edge_channels(network.generator)
        if options.fused_kernels:
            from .fused import use_fused_guided_filter, use_fused_kernels

            use_fused_kernels(network.generator)
            use_fused_guided_filter(network)
        if self.float8:
            from .float8 import use_float8_blocks

            use_float8_blocks(network.generator)  # quantized once here; kept as bytes through the casts below
        network = network.to(self.device).eval().requires_grad_(False)
        if self.dtype != torch.int8:
            network.generator.to(self.dtype)
        if options.channels_last:
            network = network.to(memory_format=torch.channels_last)
        self.network = network
        if self.dtype == torch.int8:
            from .quantize import Int8Network

            compute = torch.bfloat16 if cpu_supports_fast_bf16() else torch.float32
            self._forward = Int8Network(network, compute_dtype=compute)
        elif options.cuda_graphs:
            network.filter_eagerly_when_compiled()
            # max-autotune includes CUDA graphs; max-autotune-no-cudagraphs is refused with them (_compile_mode)
            self._forward = torch.compile(network, dynamic=False, mode=compile_mode or "reduce-overhead")
        elif options.compile and self.device.type == "cpu":
            from .packaged import CompiledNetwork

            self._forward = CompiledNetwork(network)  # ahead of time, kept across processes
        elif options.compile:
            network.filter_eagerly_when_compiled()
            self._forward = torch.compile(network, dynamic=False, mode=compile_mode)
        else:
            self._forward = network

    def _compile_mode(self, options: EngineOptions) -> str | None:
        """``options.compile_mode`` for ``torch.compile`` (``None``: inductor's default), or a ConfigError where it
        cannot apply: it needs a compiled CUDA engine (the CPU's ahead-of-time packages have their own settings)."""
        mode = options.compile_mode
        if mode == "default":
            return None
        if not (options.compile or options.cuda_graphs):
            raise ConfigError(f"compile_mode={mode!r}: applies to compiled engines; add compile=True (--compile)")
        if self.device.type != "cuda":
            raise ConfigError(f"compile_mode={mode!r}: CUDA only; the engine is on {self.device}, where compiled "
                              "engines are packaged ahead of time in inductor's default mode")
        if options.cuda_graphs and mode == "max-autotune-no-cudagraphs":
            raise ConfigError(f"compile_mode={mode!r} contradicts cuda_graphs=True; use max-autotune (which "
                              "replays CUDA graphs) or drop --cuda-graphs")
        return mode

    def _check_fused_kernels(self, options: EngineOptions) -> None:
        """``fused_kernels`` needs an eager CUDA engine and triton; on the CPU, only Triton's interpreter runs the
        kernels (``TRITON_INTERPRET=1``, how the tests check them), so the flag is refused there otherwise."""
        if options.compile or options.cuda_graphs or self.dtype == torch.int8:
            raise ConfigError("fused_kernels=True: for eager engines; compiled ones (compile, cuda_graphs, int8) "
                              "get their element-wise work fused by inductor")
        from importlib.util import find_spec

        if find_spec("triton") is None:
            raise ConfigError("fused_kernels=True: needs triton (pip install triton; it comes with torch's CUDA "
                              "wheels on Linux)")
        # Not cartoonkit.fused.interpreting(): importing that module here would build its kernels uninterpreted.
        if self.device.type != "cuda":
            if os.environ.get("TRITON_INTERPRET", "0").strip().lower() not in ("1", "true", "yes", "on"):
                raise ConfigError(f"fused_kernels=True: CUDA only (Triton kernels); the engine is on {self.device}")

    @property
    def bucket(self) -> int:
        """The padding multiple of this engine's inputs (see :attr:`EngineOptions.padding`)."""
        return self.options.padding

    @property
    def precision(self) -> str:
        """The network's precision as a name: ``float32``, ``bfloat16``, ``float16``, ``int8`` or ``float8``."""
        return "float8" if self.float8 else str(self.dtype).removeprefix("torch.")

    @torch.inference_mode()
    def __call__(self, rgb: torch.Tensor) -> torch.Tensor:
        """``uint8`` RGB ``(N, 3, H, W)`` -> float RGB on ``[0, 255]`` (unclipped), on the engine's device.

        All images of one call share one shape; ``Cartoonizer.process_many`` groups mixed sizes by bucket.
        """
        height, width = rgb.shape[-2:]
        x = rgb_uint8_to_network(rgb.to(self.device, non_blocking=True))
        x = pad_to_shape(x, *bucket_shape(height, width, self.bucket))
        if self.options.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = self._run_with_backoff(x)
        return network_to_rgb_float(y[..., :height, :width]).contiguous()

    def _run_with_backoff(self, x: torch.Tensor) -> torch.Tensor:
        """Run a batch; on CUDA out-of-memory, split it in halves and retry (down to one image)."""
        try:
            return self._forward(x)
        except torch.OutOfMemoryError:
            if x.shape[0] == 1:
                raise
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            half = x.shape[0] // 2
            log.warning("out of memory on a batch of %d at %dx%d; retrying as %d + %d",
                        x.shape[0], x.shape[-2], x.shape[-1], half, x.shape[0] - half)
            return torch.cat([self._run_with_backoff(x[:half]), self._run_with_backoff(x[half:])])
