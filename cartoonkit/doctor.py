"""``cartoonkit doctor``: what hardware is here, and the settings cartoonkit recommends for it.

Profiles hold what a data sheet says about a GPU that the recommendation uses (bfloat16 support, a note). The
batch size is the folder runner's default (:data:`~cartoonkit.run_options.DEFAULT_BATCH_SIZE`); on CUDA the
recommendation also says how many images of the asked resolution fit in the free memory. The CPU's facts come
from :mod:`cartoonkit.hardware`; torch is imported by the functions that look at devices.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .hardware import cpu_flags, cpu_model_name, cpu_supports_fast_bf16, cpu_supports_fast_int8
from .run_options import DEFAULT_BATCH_SIZE

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class DeviceProfile:
    name: str
    match: tuple[str, ...]       # substrings of torch.cuda.get_device_name()
    bf16: bool                   # hardware bfloat16 (Ampere and newer)
    note: str


PROFILES: tuple[DeviceProfile, ...] = (
    DeviceProfile("T4", ("T4",), False, "Turing: float16 only, modest bandwidth; keep batches small"),
    DeviceProfile("RTX 3090", ("3090",), True, "Ampere consumer card"),
    DeviceProfile("A10", ("A10",), True, "Ampere data-centre card"),
    DeviceProfile("L4", ("L4",), True, "Ada: efficient, low bandwidth (300 GB/s)"),
    DeviceProfile("A100", ("A100",), True, "Ampere; 40 or 80 GiB"),
    DeviceProfile("H100", ("H100",), True, "Hopper; SXM figures (PCIe is lower)"),
    DeviceProfile("H200", ("H200",), True, "Hopper with 141 GiB HBM3e"),
)


def find_profile(device_name: str) -> DeviceProfile | None:
    # Longest match first, so "A100" is not taken for "A10".
    candidates = [(len(m), p) for p in PROFILES for m in p.match if m.lower() in device_name.lower()]
    return max(candidates, key=lambda c: c[0])[1] if candidates else None


def measure_image_memory(device: torch.device, resolution: int, dtype: torch.dtype) -> int:
    """Peak bytes the network needs for one ``resolution x resolution`` image, measured on a CUDA device."""
    import torch

    from .network import CartoonNetwork

    network = CartoonNetwork().to(device).eval()
    network.generator.to(dtype)
    x = torch.zeros(1, 3, resolution, resolution, device=device)
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    with torch.inference_mode():
        network(x)
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) - base


@dataclass(frozen=True)
class Recommendation:
    device: str
    precision: str
    batch_size: int              # photos per engine call: the folder default, or fewer where they do not fit
    compile: bool
    reasons: tuple[str, ...]


MEMORY_SHARE = 0.8
"""Of the device's free memory, what a batch may take: the rest is for the decoders, encoders and fragmentation."""


def batch_that_fits(default: int, free_bytes: int, image_bytes: int) -> int:
    """The folder default, or fewer when that many images of ``image_bytes`` each do not fit in
    :data:`MEMORY_SHARE` of ``free_bytes`` (at least 1: one image is what there is to run)."""
    return max(1, min(default, int(free_bytes * MEMORY_SHARE) // max(image_bytes, 1)))


def recommend(device: torch.device, resolution: int = 1024) -> Recommendation:
    """Settings for ``device`` at ``resolution`` (the long side), with the reason for each. On CUDA the batch is
    sized for that resolution: the network's memory for one image is measured and the batch kept within the
    free memory; on the CPU one image already fills the cores at any resolution."""
    import torch

    batch = DEFAULT_BATCH_SIZE.get(device.type, 1)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        profile = find_profile(name)
        image_bytes = measure_image_memory(device, resolution, torch.float16)
        free_bytes, _ = torch.cuda.mem_get_info(device)
        fits = batch_that_fits(batch, free_bytes, image_bytes)
        sizing = (f"folders: {fits} photos per engine call at {resolution} px "
                  + ("(the folder default; --batch-size to change)" if fits == batch else
                     f"(fewer than the default {batch}: one needs {image_bytes / 2**20:.0f} MiB, "
                     f"{free_bytes / 2**30:.1f} GiB are free; pass --batch-size {fits})"))
        reasons = (
            f"{name}: float16 tensor cores" + (" (bfloat16 also supported)" if profile and profile.bf16 else ""),
            sizing,
            "torch.compile pays back its start-up on folders of more than a few dozen photos",
            profile.note if profile else "no profile for this card: the general CUDA settings",
        )
        return Recommendation(str(device), "float16", fits, True, reasons)
    from .options import precision_name

    fast_bf16 = cpu_supports_fast_bf16()
    precision = precision_name("auto", "cpu")  # what --precision auto picks here now
    reasons = (
        f"CPU {cpu_model_name()}: " + ("AVX-512 BF16/AMX present, bfloat16 through oneDNN is about twice as "
                                       "fast as float32 at > 40 dB PSNR" if fast_bf16 else
                                       "no fast bfloat16 instructions, float32"),
        f"batch {batch} (the folder default): the CPU's cores are already busy on one image; see BENCHMARKS.md "
        "for the measured batch effect",
        "torch.compile: small gain on CPU, not worth its start-up for a handful of photos",
    )
    if precision == "int8":
        reasons += ("auto picks int8: `cartoonkit warmup` compiled it for this torch and CPU; the fastest CPU path "
                    "at about 45 dB PSNR from float32 (a new image shape compiles once, 10-30 s, then is cached)",)
    elif cpu_supports_fast_int8():
        reasons += ("int8 (VNNI/AMX present) is the fastest CPU path, about 45 dB PSNR from float32: run "
                    "`cartoonkit warmup` once and auto picks it (each image shape compiles once, 10-30 s, into a "
                    "persistent cache), or pass --precision int8",)
    return Recommendation("cpu", precision, batch, False, reasons)


def describe(resolution: int = 1024) -> str:
    import torch

    flags = cpu_flags()
    lines = [
        f"torch {torch.__version__}, python {platform.python_version()}",
        f"CPU: {cpu_model_name()}, {torch.get_num_threads()} threads; AVX-512: {'avx512f' in flags}, "
        f"AVX512-BF16: {'avx512_bf16' in flags}, AMX-BF16: {'amx_bf16' in flags}, "
        f"VNNI (int8): {cpu_supports_fast_int8(flags)}",
    ]
    from .runtime import KEEP_FREED_MEMORY_ENV, keep_freed_memory

    lines.append("memory: freed buffers stay in the process (no page faults per call; "
                 f"{KEEP_FREED_MEMORY_ENV}=0 turns it off)" if keep_freed_memory() else
                 "memory: malloc as the C library has it (freed buffers go back to the kernel; slower per call)")
    devices = [torch.device("cpu")]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            lines.append(f"cuda:{i}: {p.name}, {p.total_memory / 2**30:.1f} GiB, "
                         f"compute capability {p.major}.{p.minor}")
            devices.append(torch.device(f"cuda:{i}"))
    else:
        lines.append("CUDA: not available; cartoonkit runs on the CPU")
    for device in devices:
        rec = recommend(device, resolution)
        default = " (default)" if rec.batch_size == DEFAULT_BATCH_SIZE.get(device.type, 1) else ""
        lines.append(f"\nrecommended on {rec.device} at {resolution}px: precision={rec.precision}, "
                     f"folder batch size={rec.batch_size}{default}, compile={'on' if rec.compile else 'off'}")
        lines += [f"  - {r}" for r in rec.reasons]
    lines.append("\nknown GPU profiles: " + ", ".join(p.name for p in PROFILES))
    return "\n".join(lines)
