"""What the CPU here can do, read from ``/proc/cpuinfo``: its name and the instruction sets the fast paths need.

Torch-free and importing nothing of cartoonkit's, so the engine options, the compiled cache and the command line
can all ask it. What cartoonkit recommends for the machine (``cartoonkit doctor``) is :mod:`cartoonkit.doctor`.
"""

from __future__ import annotations

import platform
from pathlib import Path


def cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def cpu_model_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_supports_fast_bf16(flags: set[str] | None = None) -> bool:
    """AMX or AVX-512 BF16 make bfloat16 convolutions fast through oneDNN."""
    flags = cpu_flags() if flags is None else flags
    return bool({"amx_bf16", "avx512_bf16"} & flags)


def cpu_supports_fast_int8(flags: set[str] | None = None) -> bool:
    """VNNI (AVX-512 or AVX) or AMX-INT8: oneDNN's int8 convolutions multiply-add at twice the bfloat16 rate."""
    flags = cpu_flags() if flags is None else flags
    return bool({"avx512_vnni", "avx_vnni", "amx_int8"} & flags)
