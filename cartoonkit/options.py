"""How to run the network: :class:`EngineOptions`, the second object that travels from the CLI, the
dashboard and the API to the engine and into worker processes (the first is
:class:`~cartoonkit.config.CartoonConfig`, what the picture should be).

Torch-free, so the command line can build its flags from it before importing torch. The rules that turn
options into what an engine does (which dtype ``auto`` means on a device, which padding bucket a compiled
engine uses) live here once; :class:`~cartoonkit.engine.Engine` and the folder runner's settings
fingerprint both call them, so they cannot disagree.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass, replace

from .errors import ConfigError
from .hardware import cpu_supports_fast_bf16, cpu_supports_fast_int8
from .settings import Widget, setting, validate

PRECISIONS = ("auto", "float32", "bfloat16", "float16", "int8", "float8")
COMPILE_MODES = ("default", "max-autotune", "max-autotune-no-cudagraphs")
"""``torch.compile`` modes a compiled CUDA engine may use (:attr:`EngineOptions.compile_mode`); ``default`` is
inductor's default (or ``reduce-overhead`` with ``cuda_graphs``)."""
SIZE_MULTIPLE = 4
"""The generator needs sides that are multiples of 4 (two stride-2 stages); the finest bucket."""
COMPILED_BUCKET = 64
"""Bucket for compiled engines and for CUDA: every shape costs a compilation (and on CUDA a cuDNN autotuning
and a CUDA graph), so photos are padded to coarser steps, and the short side also to :data:`SHAPE_LADDER`, at the
price of a little padding."""
SHAPE_LADDER = ((1, 2), (9, 16), (5, 8), (2, 3), (3, 4), (4, 5), (7, 8), (1, 1))
"""With a coarse bucket (:data:`COMPILED_BUCKET` and up), a short side longer than half the long side is padded up to
the first of these fractions of the long side (each rounded up to the bucket) that holds it: 2:1, 16:9, 8:5, 3:2,
4:3, 5:4, 8:7 and square, the aspect ratios of cameras, phones and screens. So at any resolution a folder of mixed
photos runs at no more than 8 shapes per orientation above 2:1 (at 2048 px, 64-pixel steps alone would allow 16)."""


def _device_choices() -> tuple[str, ...]:
    import torch

    return ("auto", "cpu") + (("cuda",) if torch.cuda.is_available() else ())


def _check_bucket(bucket):
    if bucket is None:
        return None
    if isinstance(bucket, bool) or not isinstance(bucket, int) or bucket < SIZE_MULTIPLE or bucket % SIZE_MULTIPLE:
        raise ConfigError(f"bucket={bucket!r}: must be a positive multiple of {SIZE_MULTIPLE}")
    return bucket


@dataclass(frozen=True)
class EngineOptions:
    """The engine's device and speed switches; the defaults are what cartoonkit recommends.

    ``bucket``: images are padded (bottom/right, cropped afterwards) to multiples of this many pixels so
    that photos of similar size share one shape; ``None`` (default) is 4 for eager engines and
    :data:`COMPILED_BUCKET` for compiled ones (see :attr:`padding`).
    """

    device: str = setting(
        "auto", str, "auto (CUDA if present), cpu, cuda or cuda:N", fingerprint=False,
        widget=Widget("select", "Device", options=_device_choices))
    precision: str = setting(
        "auto", str, "auto = float16 on CUDA, bfloat16 on CPUs with AVX-512 BF16/AMX, else float32; int8 = CPU "
                     "only, fastest there, calibrated once per process and compiled per shape (10-30 s each; "
                     "about 45 dB PSNR against float32); float8 = CUDA with compute capability >= 8.9 (Ada, Hopper) "
                     "only, the residual blocks' convolutions in float8 E4M3 and the rest float16 (not yet measured "
                     "on a GPU, so auto never picks it)", choices=PRECISIONS,
        widget=Widget("select", "Precision"))
    channels_last: bool = setting(True, bool, "NHWC tensors, the layout oneDNN and cuDNN are fastest in",
                                  cli=False, fingerprint=False)
    compile: bool = setting(
        False, bool, "torch.compile the network: faster per photo (see BENCHMARKS.md) after a start-up cost per "
                     "image shape; worth it for folders, not for a few photos", fingerprint=False)
    cuda_graphs: bool = setting(
        False, bool, "CUDA only: compile and replay the network as CUDA graphs, one per image shape (cuts "
                     "kernel-launch overhead on small batches)", fingerprint=False)
    pad_edge_channels: bool = setting(
        False, bool, "widen the first and last 7x7 convolutions from 3 to 8 channels with zeros, so they fit the "
                     "GPU's tensor cores (same network; not for int8 or --compile on the CPU)", fingerprint=False)
    compile_mode: str = setting(
        "default", str, "CUDA, with --compile or --cuda-graphs: inductor's mode. max-autotune benchmarks cuDNN, Triton "
                        "and CUTLASS choices for every convolution and matmul and fuses more: compiling takes minutes "
                        "per image shape (then kept in the inductor cache); it also replays CUDA graphs, "
                        "max-autotune-no-cudagraphs does not", choices=COMPILE_MODES, fingerprint=False)
    fused_kernels: bool = setting(
        False, bool, "CUDA, eager only: run the element-wise work between the convolutions (bias, leaky ReLU, "
                     "residual add, up-sampling + skip add) as hand-written Triton kernels, one per gap, and the "
                     "guided-filter head as two (needs triton); the same values as eager, the head's within 1e-5",
        fingerprint=False)
    # In the fingerprint: the padding reaches the pixels near the bottom and right edges through the convolutions.
    bucket: int | None = setting(None, int, "padding multiple in pixels (None: 4, or 64 when compiled)",
                                 normalise=_check_bucket, cli=False)

    def __post_init__(self) -> None:
        if not isinstance(self.device, str):  # a torch.device is welcome; it travels as its name
            object.__setattr__(self, "device", str(self.device))
        validate(self)

    @property
    def compiled(self) -> bool:
        """Whether the network is compiled, so each new shape costs a compilation (int8 always compiles:
        its int8 kernels only exist in the compiled graph)."""
        return self.compile or self.cuda_graphs or self.precision == "int8"

    @property
    def padding(self) -> int:
        """The bucket images are padded to: ``bucket`` if set, else :data:`COMPILED_BUCKET` compiled or on CUDA,
        4 otherwise (an eager CPU engine pays nothing per new shape, and every padded pixel costs it time)."""
        if self.bucket is not None:
            return self.bucket
        cuda = self.device.startswith("cuda")
        return COMPILED_BUCKET if self.compiled or cuda else SIZE_MULTIPLE

    def resolved(self, device_type: str, *, int8_ok: bool = True) -> EngineOptions:
        """These options made concrete for a device: ``precision`` (``auto`` -> the name it means there, see
        :func:`precision_name`) and ``bucket`` (the :attr:`padding` that precision and device give), so that they
        describe what really runs, and the resume fingerprint records that."""
        concrete = replace(self, precision=precision_name(self.precision, device_type, int8_ok=int8_ok))
        if self.bucket is None and device_type == "cuda":  # "auto" that turned out to be CUDA
            return replace(concrete, bucket=COMPILED_BUCKET)
        return replace(concrete, bucket=concrete.padding)

    def for_processes(self, device_type: str) -> EngineOptions:
        """:meth:`resolved` for an engine in each of several processes (Ray actors, ``--workers``/``--devices``):
        there ``auto`` never picks int8 by itself, because int8 calibrates and compiles per process (see
        :attr:`single_process`); asked for by name, it is refused for several processes instead."""
        return self.resolved(device_type, int8_ok=False)

    @property
    def single_process(self) -> str | None:
        """Why these options must run in one process (compiled engines compile and calibrate per process),
        or ``None`` when several worker processes are fine."""
        if self.compiled:
            return "--compile, --cuda-graphs and --precision int8 work with one process"
        return None


def precision_name(precision: str, device_type: str, *, int8_ok: bool = True) -> str:
    """The dtype name ``precision`` means on a device of ``device_type`` (``cpu``/``cuda``), or a ConfigError.

    ``auto``, the fastest precision that keeps 44 dB PSNR against float32 on real photos: float16 on CUDA; on an
    x86 CPU with VNNI or AMX int8 once ``cartoonkit warmup`` has compiled it into the cache for this torch and CPU
    (and ``int8_ok``: see :meth:`EngineOptions.for_processes`),
    else bfloat16 on a CPU with fast bf16 (AVX-512 BF16/AMX), else float32. ``int8`` (x86 CPUs only): the
    convolutions' precision; the rest runs as :class:`~cartoonkit.quantize.Int8Network` decides. ``float8`` (CUDA
    only; the engine also checks compute capability >= 8.9): the residual blocks' convolutions in float8 E4M3, the
    rest float16 (:mod:`cartoonkit.float8`); ``auto`` never picks it: it has not been measured on a GPU against the
    44 dB bar (47-52 dB with float32 around it on the CPU, tests/test_float8.py).
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"precision={precision!r}: unknown, allowed {', '.join(PRECISIONS)}")
    if precision == "auto":
        if device_type == "cuda":
            return "float16"
        if int8_ok and int8_prepared():
            return "int8"
        return "bfloat16" if cpu_supports_fast_bf16() else "float32"
    if precision == "float16" and device_type == "cpu":
        raise ConfigError("precision='float16': not supported on the CPU; use bfloat16 or float32")
    if precision == "float8" and device_type != "cuda":
        raise ConfigError(f"precision='float8': CUDA only (float8 tensor cores, compute capability >= 8.9: Ada, "
                          f"Hopper); on {device_type} use auto")
    if precision == "int8":
        if device_type != "cpu":
            raise ConfigError(f"precision='int8': CPU only (oneDNN int8 kernels); on {device_type} use auto or "
                              "float16")
        if not _x86():
            raise ConfigError(f"precision='int8': needs an x86-64 CPU (oneDNN's int8 kernels), this is "
                              f"{platform.machine()}; use auto")
    return precision


def int8_available() -> bool:
    """Whether int8 can run fast here: an x86 CPU with VNNI or AMX, and torchao installed."""
    if not (_x86() and cpu_supports_fast_int8()):
        return False
    from importlib.util import find_spec

    return find_spec("torchao") is not None


def int8_prepared() -> bool:
    """Whether ``auto`` may pick int8 here: :func:`int8_available`, and ``cartoonkit warmup`` run for this torch,
    torchao and CPU (its mark is in the compiled cache)."""
    if not int8_available():
        return False
    from .compile_cache import int8_marked

    return int8_marked()


def _x86() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64")


def bucket_shape(height: int, width: int, bucket: int) -> tuple[int, int]:
    """The padded shape a ``height x width`` image runs at: each side rounded up to ``bucket``; with a coarse
    bucket (:data:`COMPILED_BUCKET` and up) a short side over half the long side also goes up to the next rung of
    :data:`SHAPE_LADDER`. It depends on the image's own size only, never on what else is in its batch."""
    def up(side: int) -> int:
        return -(-side // bucket) * bucket

    padded_height, padded_width = up(height), up(width)
    if bucket < COMPILED_BUCKET:
        return padded_height, padded_width
    long, short = max(padded_height, padded_width), min(padded_height, padded_width)
    rungs = [up(-(-long * numerator // denominator)) for numerator, denominator in SHAPE_LADDER]
    if short > rungs[0]:  # below 2:1 (panoramas, strips) the bucket alone
        short = next(rung for rung in rungs if rung >= short)
    return (long, short) if padded_height >= padded_width else (short, long)
