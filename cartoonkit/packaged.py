"""The network compiled ahead of time, one AOTInductor package per input shape, kept across processes.

Why: ``torch.compile`` compiles again in every process (10-30 s a shape on a laptop CPU), so a compiled engine
never paid off for a single photo, the dashboard or a notebook. A package in :mod:`cartoonkit.compile_cache` is
loaded by the next process in milliseconds, and never when anything it depends on differs.

:class:`PackagedNetwork` is the plumbing both compiled CPU engines share: the cache key of a shape, build on a
miss, load, run. The generator and the guided-filter head are packages of their own (:class:`FilterPackages`
says why). :class:`CompiledNetwork` is ``compile=True`` on the CPU (the float32 or
bfloat16 generator); :class:`cartoonkit.quantize.Int8Network` is ``precision="int8"``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
from torch import nn

from .network import CartoonNetwork, box_counts, cached_box_counts, guided_filter

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
        self._filter = FilterPackages(self.radius, self.eps, self.cache)   # nothing compiles until it is called
        self.built: list[tuple] = []   # shapes this object compiled (the rest came from the cache)

    def key_parts(self, x: torch.Tensor) -> dict:
        """What the compiled package for ``x``'s shape depends on (see :mod:`cartoonkit.compile_cache`)."""
        return {**self._key_parts, "shape": list(x.shape), "channels_last": memory_format(x) == torch.channels_last}

    def _compile_package(self, x: torch.Tensor, destination: str) -> None:
        raise NotImplementedError

    def _runner(self, x: torch.Tensor) -> Callable[..., torch.Tensor]:
        return load_or_build(self.cache, self.key_parts(x), lambda destination: self._compile_package(x, destination),
                             self.built, f"{self.kind} {tuple(x.shape)}", tuple(x.shape))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        key = (tuple(x.shape), memory_format(x))
        if key not in self._by_shape:
            self._by_shape[key] = self._runner(x)
        return self._run(self._by_shape[key], x)

    def _run(self, package: Callable, x: torch.Tensor) -> torch.Tensor:
        """The generator's package on ``x``, then the guided filter's."""
        return self._filter(x, package(x))


def load_or_build(cache, parts: dict, build: Callable[[str], None], built: list, what: str, shape: tuple) -> Callable:
    """The package for ``parts`` from ``cache``, compiled into it first by ``build(destination)`` on a miss
    (``shape`` is then noted in ``built``)."""
    from .compile_cache import key_of

    key = key_of(parts)
    runner = cache.load(key)
    if runner is None:
        cache.store(key, parts, build)
        built.append(shape)
        runner = cache.load(key)
        if runner is None:
            raise RuntimeError(f"{what}: the package just compiled does not load")
    return runner


class _GuidedFilter(nn.Module):
    def __init__(self, radius: int, eps: float):
        super().__init__()
        self.radius, self.eps = radius, eps

    def forward(self, guide: torch.Tensor, src: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        return guided_filter(guide, src, self.radius, self.eps, counts)


class FilterPackages:
    """The float32 guided filter compiled ahead of time, one package per image size, in the same cache.

    Its own package, not part of the generator's: fused with the generator's last layer, inductor indexed the
    filter's reads through that layer's layout and its loops ran scalar. On its own, with both images in NCHW
    memory and the window counts as an input (computed inside, inductor folds them into index arithmetic and
    stops vectorising), it is a few vectorised passes: 22.5 ms against 50 ms eager at 1024 px and 3.2 against
    8.1 at 512 (two Zen 4 cores), with the same values."""

    def __init__(self, radius: int, eps: float, cache):
        from .compile_cache import environment_parts

        self.radius, self.eps, self.cache = radius, eps, cache
        self._parts = {**environment_parts(), "network": "guided-filter", "radius": radius, "eps": eps}
        self._by_shape: dict[tuple, Callable] = {}
        self.built: list[tuple] = []

    def __call__(self, guide: torch.Tensor, src: torch.Tensor) -> torch.Tensor:
        guide, src = guide.float().contiguous(), src.float().contiguous()
        shape = tuple(guide.shape)
        if shape not in self._by_shape:
            self._by_shape[shape] = load_or_build(self.cache, {**self._parts, "shape": list(shape)},
                                                  lambda destination: self._compile(guide, destination),
                                                  self.built, f"guided filter {shape}", shape)
        return self._by_shape[shape](guide, src, cached_box_counts(guide, self.radius))

    def _compile(self, guide: torch.Tensor, destination: str) -> None:
        from torch._inductor import aoti_compile_and_package

        with torch.inference_mode(False), torch.no_grad():
            # Two distinct example tensors: given the same one twice, export treats them as one input.
            examples = (torch.zeros(guide.shape), torch.zeros(guide.shape),
                        box_counts(guide.shape[-2], guide.shape[-1], self.radius))
            exported = torch.export.export(_GuidedFilter(self.radius, self.eps), examples)
            aoti_compile_and_package(exported, package_path=destination)


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
