"""The network compiled ahead of time, one AOTInductor package per input shape, kept across processes.

Why: ``torch.compile`` compiles again in every process (10-30 s a shape on a laptop CPU), so a compiled engine
never paid off for a single photo, the dashboard or a notebook. A package in :mod:`cartoonkit.compile_cache` is
loaded by the next process in milliseconds, and never when anything it depends on differs.

:class:`PackagedNetwork` is the plumbing both compiled CPU engines share: the cache key of a shape, build on a
miss, load, run. What goes into a package is the generator only; the guided-filter head runs eagerly after it
(see ``CartoonNetwork.forward`` for why). :class:`CompiledNetwork` is ``compile=True`` on the CPU (the float32 or
bfloat16 generator); :class:`cartoonkit.quantize.Int8Network` is ``precision="int8"``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
from torch import nn

from .network import CartoonNetwork, guided_filter

log = logging.getLogger(__name__)


class PackagedNetwork:
    """``CartoonNetwork``'s forward with the generator from a compiled package per input shape.

    Subclasses say what a package depends on (``key_parts`` given here, plus the shape and layout) and how one is
    built (:meth:`_compile_package`). ``cache``: a :class:`~cartoonkit.compile_cache.CompiledCache` (default:
    the user's)."""

    kind = "network"

    def __init__(self, network: CartoonNetwork, key_parts: dict, cache=None):
        from .compile_cache import CompiledCache

        self.radius, self.eps = network.radius, network.eps
        self.cache = cache if cache is not None else CompiledCache()
        self._key_parts = key_parts
        self._by_shape: dict[tuple, Callable[[torch.Tensor], torch.Tensor]] = {}
        self.built: list[tuple] = []   # shapes this object compiled (the rest came from the cache)

    def key_parts(self, x: torch.Tensor) -> dict:
        """What the compiled package for ``x``'s shape depends on (see :mod:`cartoonkit.compile_cache`)."""
        return {**self._key_parts, "shape": list(x.shape), "channels_last": memory_format(x) == torch.channels_last}

    def _compile_package(self, x: torch.Tensor, destination: str) -> None:
        raise NotImplementedError

    def _runner(self, x: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        from .compile_cache import key_of

        parts = self.key_parts(x)
        key = key_of(parts)
        runner = self.cache.load(key)
        if runner is None:
            self.cache.store(key, parts, lambda destination: self._compile_package(x, destination))
            self.built.append(tuple(x.shape))
            runner = self.cache.load(key)
            if runner is None:
                raise RuntimeError(f"{self.kind}: the package just compiled for {tuple(x.shape)} does not load")
        return runner

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        key = (tuple(x.shape), memory_format(x))
        if key not in self._by_shape:
            self._by_shape[key] = self._runner(x)
        return guided_filter(x, self._by_shape[key](x), self.radius, self.eps)


class _FloatGenerator(nn.Module):
    """The generator in its own dtype, as it is compiled: float32 in, float32 out."""

    def __init__(self, generator: nn.Module):
        super().__init__()
        self.generator = generator

    def forward(self, photo_bgr: torch.Tensor) -> torch.Tensor:
        return self.generator(photo_bgr.to(self.generator.conv0.weight.dtype)).float()


class CompiledNetwork(PackagedNetwork):
    """``compile=True`` on the CPU: the float32 or bfloat16 generator (``network``'s dtype) compiled ahead of time
    with inductor (freezing: weights folded and pre-packed for oneDNN), one package per shape."""

    kind = "compile"

    def __init__(self, network: CartoonNetwork, cache=None):
        from .compile_cache import environment_parts, weights_digest

        self.generator = network.generator.eval().requires_grad_(False)
        dtype = self.generator.conv0.weight.dtype
        super().__init__(network, {**environment_parts(), "network": "compiled", "weights": weights_digest(network),
                                   "dtype": str(dtype)}, cache)

    def _compile_package(self, x: torch.Tensor, destination: str) -> None:
        from torch._inductor import aoti_compile_and_package

        with torch.inference_mode(False), torch.no_grad():
            example = torch.zeros(x.shape, dtype=torch.float32).contiguous(memory_format=memory_format(x))
            exported = torch.export.export(_FloatGenerator(self.generator), (example,))
            log.info("compile: compiling for shape %s (10-30 s, once per shape; kept in %s)", tuple(x.shape),
                     self.cache.folder)
            aoti_compile_and_package(exported, package_path=destination, inductor_configs={"freezing": True})


def memory_format(x: torch.Tensor) -> torch.memory_format:
    return torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous() \
        else torch.contiguous_format
