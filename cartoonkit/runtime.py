"""Process-wide torch switches, set in this one place rather than as side effects of building an engine.

:class:`~cartoonkit.pipeline.Cartoonizer` calls :func:`configure_torch` when it is made (so API users get
it too); the folder runner's worker processes call it with their share of the CPU threads.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys

import torch

log = logging.getLogger(__name__)

COMPILED_SHAPES = 64
"""torch.compile falls back to eager after 8 shapes by default; with 64-px buckets a folder of portraits
at 1024 px needs at most 32 (two orientations), so this limit is never the reason for a slow run."""


def configure_torch(device: torch.device, *, compiled: bool = False, threads: int | None = None) -> None:
    """For a ``compiled`` engine, raise dynamo's recompile limit to :data:`COMPILED_SHAPES` and, on CUDA, keep
    inductor's caches across processes (:func:`persistent_inductor_cache`); on CUDA let cuDNN autotune (shapes
    repeat thanks to the buckets); if given, set the CPU threads of this process; keep freed memory in the
    process (:func:`keep_freed_memory`). Idempotent.

    Dynamo is only imported for compiled engines: importing it costs about 1.5 s of start-up."""
    keep_freed_memory()
    if compiled:
        if device.type == "cuda":
            persistent_inductor_cache()
        import torch._dynamo.config as dynamo_config

        dynamo_config.recompile_limit = max(dynamo_config.recompile_limit, COMPILED_SHAPES)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    if threads is not None:
        torch.set_num_threads(threads)


INDUCTOR_CACHE_ENV = "TORCHINDUCTOR_CACHE_DIR"


def persistent_inductor_cache() -> str:
    """Point inductor's on-disk caches (its FX graph cache, autotuning results and generated kernels) at
    ``$CARTOONKIT_CACHE/inductor`` unless ``TORCHINDUCTOR_CACHE_DIR`` names another folder than torch's default,
    and make sure the FX graph cache is on. Why: inductor's default is ``/tmp/torchinductor_$USER``, which a
    reboot or a clean of ``/tmp`` empties, so a compiled CUDA engine would generate and autotune its kernels
    again; with the cache kept, a new process only traces (dynamo) and loads. (Torch writes its default into the
    variable the first time it looks, so the default there counts as unset.) The CPU path keeps whole compiled
    packages instead (:mod:`cartoonkit.compile_cache`). Returns the folder in use."""
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    from .paths import cache_dir

    given = os.environ.get(INDUCTOR_CACHE_ENV)
    if not given or os.path.abspath(given) == os.path.abspath(default_cache_dir()):
        os.environ[INDUCTOR_CACHE_ENV] = str(cache_dir() / "inductor")
    import torch._inductor.config as inductor_config

    inductor_config.fx_graph_cache = True
    return os.environ[INDUCTOR_CACHE_ENV]


KEEP_FREED_MEMORY_ENV = "CARTOONKIT_KEEP_FREED_MEMORY"
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # glibc's mallopt parameters (malloc.h)
_kept: bool | None = None


def keep_freed_memory() -> bool:
    """Stop glibc's malloc from giving the network's large buffers back to the kernel each time they are freed.

    Why: every intermediate tensor of a 512-px photo is several MB (32 channels x 512 x 512 is 16 MB in
    bfloat16). By default glibc serves such blocks with ``mmap`` and unmaps them on free, or trims them off the
    top of the heap, so every network call faults its memory back in, page by page, and the kernel zeroes each
    page. Measured on the Zen 4 development machine (a VM), per call at 512 px: int8 4,500-6,000 page faults
    and about 50 ms of kernel time, median 151-158 ms against 74-76 ms with this; the bfloat16 default 231 against
    144 ms (BENCHMARKS.md). With ``mmap`` off and trimming off, freed blocks stay in the heap and the next call
    reuses them: the process keeps its peak memory, as a caching allocator would. Outputs are unchanged.

    Linux with glibc only (elsewhere a no-op); ``CARTOONKIT_KEEP_FREED_MEMORY=0`` leaves malloc as it is.
    Process-wide and idempotent: True when the setting is in force."""
    global _kept
    if _kept is not None:
        return _kept
    _kept = False
    if os.environ.get(KEEP_FREED_MEMORY_ENV, "1") == "0" or not sys.platform.startswith("linux"):
        return _kept
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other C libraries without mallopt
        return _kept
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # mallopt returns 1 on success. Large blocks then come from the heap (threads' arenas still mmap a block
    # bigger than their 64 MB heaps), and a free never shrinks the heap.
    _kept = mallopt(_M_MMAP_MAX, 0) == 1 and mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) == 1
    if not _kept:
        log.debug("mallopt refused; freed memory goes back to the kernel as usual")
    return _kept


def release_freed_memory() -> bool:
    """Give the operating system back the memory that malloc holds freed (glibc's ``malloc_trim(0)``, which walks
    every thread's arena). The other side of :func:`keep_freed_memory`: while work runs, freed buffers are kept for
    the next call; when a long-running process (the dashboard) falls idle, what its finished work freed goes back,
    so the process settles near its idle size instead of staying at its peak. The next call faults its buffers in
    again once. True when memory was returned; a no-op (False) without glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # musl and other C libraries
        return False
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim(0) == 1
