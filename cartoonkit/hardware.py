"""What hardware is here: device names, memory and the CPU features that decide precision."""

from __future__ import annotations

import platform
from pathlib import Path

import torch


def cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def cpu_supports_fast_bf16(flags: set[str] | None = None) -> bool:
    """AMX or AVX-512 BF16 make bfloat16 convolutions fast through oneDNN."""
    flags = cpu_flags() if flags is None else flags
    return bool({"amx_bf16", "avx512_bf16"} & flags)


def describe() -> str:
    flags = cpu_flags()
    lines = [
        f"torch {torch.__version__}, python {platform.python_version()}",
        f"CPU: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads; "
        f"AVX-512: {'avx512f' in flags}, AMX-BF16: {'amx_bf16' in flags}, AVX512-BF16: {'avx512_bf16' in flags}",
    ]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            lines.append(f"cuda:{i}: {p.name}, {p.total_memory / 2**30:.1f} GiB, "
                         f"compute capability {p.major}.{p.minor}")
    else:
        lines.append("CUDA: not available; cartoonkit runs on the CPU")
    return "\n".join(lines)
