"""A persistent cache of compiled networks: what calibration and compilation produce, reused across processes.

An entry is one AOTInductor package (``<key>.pt2``, a compiled shared library plus the frozen weights) and its
card (``<key>.json``: the key's parts, for people and for checking). The key is a hash of everything that
decides what was compiled: the cache format, the model's weights, the input shape and memory format, the
precision and its settings, the torch and torchao versions and the CPU's instruction sets. An entry is
never loaded when any of them differs (another key, another file); one that cannot be loaded (a torn or
corrupted file) is deleted and rebuilt. Entries are written to a temporary file and renamed, so a killed
build leaves nothing half-written.

The cache lives in ``$CARTOONKIT_CACHE/compiled`` (default ``~/.cache/cartoonkit/compiled``) and is safe to
delete at any time. It is held to ``$CARTOONKIT_COMPILED_CACHE_MB`` (default 2048 MB): after each new entry
the least recently used ones go until it fits.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import paths
from .fileio import write_atomic

log = logging.getLogger(__name__)

FORMAT_VERSION = 3   # 3: generator packages (int8: conv9 on the phase grid) and guided-filter packages apart
DEFAULT_LIMIT_MB = 2048
LIMIT_ENV = "CARTOONKIT_COMPILED_CACHE_MB"
# The instruction sets that decide which kernels inductor and oneDNN generate; other /proc/cpuinfo flags
# (power management, bugs) do not make a package invalid.
_ISA_PREFIXES = ("avx", "amx", "sse", "fma", "f16c", "bmi", "vnni", "neon", "asimd", "sve")


def cpu_isa() -> list[str]:
    from .hardware import cpu_flags

    return sorted(f for f in cpu_flags() if f.startswith(_ISA_PREFIXES))


def environment_parts() -> dict[str, Any]:
    """The parts of every key that describe this machine and software, not the network."""
    import torch

    try:
        from importlib.metadata import version

        torchao = version("torchao")
    except Exception:  # not installed: part of the key all the same
        torchao = None
    return {"format": FORMAT_VERSION, "torch": torch.__version__, "torchao": torchao,
            "machine": platform.machine(), "cpu_isa": cpu_isa()}


def weights_digest(module) -> str:
    """sha256 of a module's parameters and buffers (names, shapes, dtypes, bytes): the model's identity."""
    import torch

    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(tensor.detach().cpu().contiguous().flatten().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def key_of(parts: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]


class CompiledCache:
    """AOTInductor packages by key, in ``folder`` (default :func:`default_folder`), within ``limit_mb``."""

    def __init__(self, folder: str | os.PathLike | None = None, limit_mb: float | None = None):
        self.folder = Path(folder) if folder is not None else default_folder()
        self.limit_bytes = int((limit_mb if limit_mb is not None else _limit_mb()) * 2**20)

    def package(self, key: str) -> Path:
        return self.folder / f"{key}.pt2"

    def load(self, key: str) -> Callable | None:
        """The compiled network stored under ``key``, or ``None`` (a missing entry; a damaged one is removed)."""
        path = self.package(key)
        if not path.is_file():
            return None
        try:
            runner = _load_package(path)
        except Exception as exc:  # torn write, another build's leftovers, a library that does not load
            log.warning("compiled cache: %s cannot be loaded (%s); rebuilding it", path.name, exc)
            self.remove(key)
            return None
        now = time.time()
        os.utime(path, (now, now))  # recently used: the last to be evicted
        return runner

    def store(self, key: str, parts: dict[str, Any], build: Callable[[str], None]) -> Path:
        """Run ``build(temporary_path)`` (it writes the package there), then publish it under ``key`` with its
        card and evict the least recently used entries beyond the size limit."""
        self.folder.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=f".{key}.tmp-", suffix=".pt2", dir=self.folder)
        os.close(fd)
        try:
            build(temporary)
            _write_json(self.folder / f"{key}.json", {"key": key, "parts": parts, "created": time.time()})
            os.replace(temporary, self.package(key))
        finally:
            Path(temporary).unlink(missing_ok=True)
        self.evict()
        return self.package(key)

    def remove(self, key: str) -> None:
        for path in (self.package(key), self.folder / f"{key}.json"):
            path.unlink(missing_ok=True)

    def entries(self) -> list[Path]:
        return sorted(self.folder.glob("*.pt2"), key=lambda p: p.stat().st_mtime) if self.folder.is_dir() else []

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.entries())

    def evict(self) -> None:
        """Remove the least recently used entries until the cache fits its limit (the newest always stays)."""
        entries = self.entries()
        total = sum(p.stat().st_size for p in entries)
        for path in entries[:-1]:
            if total <= self.limit_bytes:
                break
            total -= path.stat().st_size
            self.remove(path.stem)
            log.info("compiled cache: evicted %s (limit %d MB)", path.name, self.limit_bytes // 2**20)


def _load_package(path: Path) -> Callable:
    """A one-tensor-in, one-tensor-out AOTInductor package as a function.

    Through the package loader torch itself wraps (``torch._inductor.aoti_load_package`` builds the same
    ``AOTIModelPackageLoader``): importing ``torch._inductor`` to reach it costs about 1.2 s of start-up, which
    is most of what a cached int8 run would otherwise add to the default's. ``aoti_load_package`` is the
    fallback should that loader move."""
    import torch

    loader_class = getattr(getattr(torch._C, "_aoti", None), "AOTIModelPackageLoader", None)
    if loader_class is None:
        from torch._inductor import aoti_load_package

        return aoti_load_package(str(path))
    loader = loader_class(str(path), "model", False, 1, -1)

    def run(*inputs):
        return loader.run(list(inputs))[0]

    return run


def _int8_mark(folder: Path | None = None) -> Path:
    return (folder or default_folder()) / f"int8-ready-{key_of(environment_parts())}.json"


def mark_int8_ready(shapes, folder: Path | None = None) -> Path:
    """Note that ``cartoonkit warmup`` prepared int8 for this torch, torchao and CPU: ``auto`` may now pick it."""
    path = _int8_mark(folder)
    _write_json(path, {"parts": environment_parts(), "shapes": [list(s) for s in shapes], "created": time.time()})
    return path


def int8_marked(folder: Path | None = None) -> bool:
    return _int8_mark(folder).is_file()


def _write_json(path: Path, data: dict) -> None:
    write_atomic(path, (json.dumps(data, indent=2, default=str) + "\n").encode())


def default_folder() -> Path:
    return paths.cache_dir() / "compiled"


def _limit_mb() -> float:
    try:
        value = float(os.environ.get(LIMIT_ENV, DEFAULT_LIMIT_MB))
    except ValueError:
        return DEFAULT_LIMIT_MB
    return value if value > 0 else DEFAULT_LIMIT_MB
