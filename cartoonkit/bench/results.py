"""The schema of a benchmark result: what ``cartoonkit bench --json`` writes and the dashboard reads.

A result is a JSON object: ``machine``, ``torch``, ``photos``, ``gflop_per_image``, ``checks``, ``rows`` (one
:class:`BenchRow` each), ``compound`` (one :class:`CompoundRow` each) and, when the run measured it, ``peak`` (a
:class:`MachinePeak`: the device's matrix-multiply rate per precision and its copy bandwidth, measured in the same
run by :mod:`cartoonkit.bench.peak`). Model rows carry ``achieved_tflops`` (the network's GFLOP per image over the
row's ms per image) and ``share_of_peak`` (that rate over the measured peak of the row's precision).
:meth:`BenchResult.from_json` reads leniently: a file that is hand-written, older or cut short loses the rows it
cannot use, never the whole file; fields it no longer knows (``flop_fraction`` of older files) are ignored, fields it
lacks (``peak``, ``achieved_tflops`` before issue 23) are ``None``. No torch here.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path


def _number(value: object, finite: bool = True) -> float | None:
    """``value`` as a float when it is a JSON number (not a bool; not inf or NaN when ``finite``), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if math.isnan(value) or (finite and math.isinf(value)):
        return None
    return float(value)


def _whole(value: object) -> int | None:
    number = _number(value)
    return None if number is None else int(number)


@dataclass
class BenchRow:
    """One measurement: ms per image of one variant at one resolution and batch size."""

    variant: str         # engine configuration (see VARIANTS) or a peer runtime
    name: str            # "model", "end_to_end" or "batch_end_to_end"
    resolution: int      # long side in pixels (model rows: square images)
    batch: int
    ms_per_image: float  # median over repeats
    images_per_second: float
    precision: str = ""
    psnr_vs_fp32: float | None = None  # model rows: quality of this variant against eager float32
    repeats: int | None = None
    images: int | None = None
    peak_memory_mb: float | None = None  # model rows: peak memory above the start of the row, see PeakMemory
    achieved_tflops: float | None = None  # model rows: the network's GFLOP per image / ms per image (= TFLOP/s)
    share_of_peak: float | None = None    # achieved_tflops / the run's measured peak for this precision (0.16 = 16 %)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: object) -> BenchRow | None:
        """The row, or None when it lacks a variant, a resolution or a time (ms per image or images per second).

        A missing name is ``"model"``, a missing batch 1; either time is derived from the other.
        """
        if not isinstance(data, dict) or not isinstance(data.get("variant"), str):
            return None
        resolution, ms = _number(data.get("resolution")), _number(data.get("ms_per_image"))
        ips = _number(data.get("images_per_second"))
        if resolution is None or (ms is None and not ips):
            return None
        ms = ms if ms is not None else 1000.0 / ips
        if ms <= 0:
            return None
        return cls(variant=data["variant"], name=str(data.get("name", "model")), resolution=int(resolution),
                   batch=_whole(data.get("batch")) or 1, ms_per_image=ms, images_per_second=ips or 1000.0 / ms,
                   precision=str(data.get("precision", "")),
                   psnr_vs_fp32=_number(data.get("psnr_vs_fp32"), finite=False),  # inf: identical outputs
                   repeats=_whole(data.get("repeats")), images=_whole(data.get("images")),
                   peak_memory_mb=_number(data.get("peak_memory_mb")),
                   achieved_tflops=_number(data.get("achieved_tflops")),
                   share_of_peak=_number(data.get("share_of_peak")))


PEAK_PRECISIONS = ("float32", "bfloat16", "float16", "int8")
"""The precisions a peak is measured for (CUDA: float16, bfloat16, float32; the CPU: float32, bfloat16, int8)."""


def precision_key(precision: str) -> str | None:
    """The peak a row of ``precision`` is held against: the first word of it (``"int8 (rest bfloat16)"`` ->
    ``"int8"``, ``"float32 (fp16 weights)"`` -> ``"float32"``), or None for a precision no peak is measured for."""
    word = precision.split(" ", 1)[0] if precision else ""
    return word if word in PEAK_PRECISIONS else None


@dataclass
class MachinePeak:
    """The device's measured peak in one run (:func:`cartoonkit.bench.peak.measure_peak`), the yardstick of the rows.

    ``matmul_tflops``: precision -> TFLOP/s of ``a @ b`` on square matrices of ``matmul_size`` (int8:
    ``torch._int_mm``, tera-operations per second), the median of ``repeats``. ``copy_gb_per_s``: a copy of
    ``copy_mb`` MiB on the device, bytes read plus bytes written per second. ``float32_tf32``: CUDA only, whether the
    float32 peak used TF32, as cuDNN runs the float32 convolutions (``torch.backends.cudnn.allow_tf32``).
    """

    device: str = ""                 # "cuda" or "cpu", with the card or CPU in BenchResult.machine
    matmul_tflops: dict[str, float] = field(default_factory=dict)
    copy_gb_per_s: float | None = None
    matmul_size: int | None = None
    copy_mb: float | None = None
    repeats: int | None = None
    threads: int | None = None       # CPU: torch's thread count during the measurement
    float32_tf32: bool | None = None
    seconds: float | None = None     # how long the measurement took

    def peak_for(self, precision: str) -> float | None:
        """TFLOP/s of the peak a row of ``precision`` is held against (:func:`precision_key`), or None."""
        key = precision_key(precision)
        return self.matmul_tflops.get(key) if key else None

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: object) -> MachinePeak | None:
        """The peak, or None when ``data`` is not an object; rates that are not positive numbers are left out."""
        if not isinstance(data, dict):
            return None
        rates = data.get("matmul_tflops") if isinstance(data.get("matmul_tflops"), dict) else {}
        tf32 = data.get("float32_tf32")
        return cls(device=str(data.get("device", "")),
                   matmul_tflops={str(k): n for k, v in rates.items() if (n := _number(v)) is not None and n > 0},
                   copy_gb_per_s=_number(data.get("copy_gb_per_s")), matmul_size=_whole(data.get("matmul_size")),
                   copy_mb=_number(data.get("copy_mb")), repeats=_whole(data.get("repeats")),
                   threads=_whole(data.get("threads")), float32_tf32=tf32 if isinstance(tf32, bool) else None,
                   seconds=_number(data.get("seconds")))


def achieved_tflops(gflop_per_image: float, ms_per_image: float) -> float:
    """TFLOP/s of a row: GFLOP per image over ms per image (10^9 / 10^-3 = 10^12)."""
    return gflop_per_image / ms_per_image


def share_of_peak(achieved: float | None, peak: MachinePeak | None, precision: str) -> float | None:
    """``achieved`` (TFLOP/s) as a fraction of ``peak``'s rate for ``precision``; None when either is unknown."""
    rate = peak.peak_for(precision) if peak is not None else None
    return None if achieved is None or not rate else achieved / rate


@dataclass
class CompoundRow:
    """Compound mode on one photo: ms in all and the share of each stage."""

    photo: str
    faces: str                   # the label the photo was measured under (how many faces it has)
    resolution: int | None
    ms_per_photo: float | None
    share: dict[str, float]      # stage -> fraction of ms_per_photo
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: object) -> CompoundRow | None:
        """The entry, or None without a ``share`` object; shares that are not numbers are left out."""
        if not isinstance(data, dict) or not isinstance(data.get("share"), dict):
            return None
        share = {str(k): n for k, v in data["share"].items() if (n := _number(v)) is not None}
        notes = data.get("notes")
        return cls(photo=str(data.get("photo", "?")), faces=str(data.get("faces", "")),
                   resolution=_whole(data.get("resolution")), ms_per_photo=_number(data.get("ms_per_photo")),
                   share=share, notes=[str(n) for n in notes] if isinstance(notes, list) else [])


@dataclass
class BenchResult:
    """One benchmark run: where it ran, on what, and its rows."""

    machine: str = ""
    torch: str = ""                 # torch version
    photos: list[str] = field(default_factory=list)  # file names, one per image of an end-to-end pass
    gflop_per_image: dict[str, float] = field(default_factory=dict)  # resolution -> GFLOP of a square image
    checks: dict[str, float] = field(default_factory=dict)           # e.g. ONNX parity, max abs difference
    rows: list[BenchRow] = field(default_factory=list)
    compound: list[CompoundRow] = field(default_factory=list)
    peak: MachinePeak | None = None  # measured in the same run; None with --no-peak and in files before issue 23

    def to_json(self) -> dict:
        """The JSON object (a dict of JSON values) that ``cartoonkit bench --json`` writes (``peak`` when measured)."""
        data = {"machine": self.machine, "torch": self.torch, "photos": list(self.photos),
                "gflop_per_image": dict(self.gflop_per_image), "checks": dict(self.checks),
                "rows": [r.to_json() for r in self.rows], "compound": [c.to_json() for c in self.compound]}
        if self.peak is not None:
            data["peak"] = self.peak.to_json()
        return data

    @classmethod
    def from_json(cls, data: object) -> BenchResult:
        """The result of a parsed JSON value; whatever is missing or broken is left out (an empty result at worst)."""
        if not isinstance(data, dict):
            return cls()

        def listed(key: str) -> list:
            return data[key] if isinstance(data.get(key), list) else []

        def numbers(key: str) -> dict[str, float]:
            values = data.get(key) if isinstance(data.get(key), dict) else {}
            return {str(k): n for k, v in values.items() if (n := _number(v)) is not None}

        return cls(machine=str(data.get("machine", "")), torch=str(data.get("torch", "")),
                   photos=[str(p) for p in listed("photos")], gflop_per_image=numbers("gflop_per_image"),
                   checks=numbers("checks"),
                   rows=[r for r in map(BenchRow.from_json, listed("rows")) if r is not None],
                   compound=[c for c in map(CompoundRow.from_json, listed("compound")) if c is not None],
                   peak=MachinePeak.from_json(data.get("peak")))


def save_json(result: dict, path: Path) -> Path:
    """Write a result's JSON object (:meth:`BenchResult.to_json`) to ``path``; its folder is created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path


def _rate_unit(parsed: BenchResult) -> tuple[str, float]:
    """TFLOP/s when any peak or row reaches 1 TFLOP/s (a GPU), else GFLOP/s (a CPU); with its factor from TFLOP/s."""
    peaks = list(parsed.peak.matmul_tflops.values()) if parsed.peak else []
    rates = [*peaks, *(r.achieved_tflops for r in parsed.rows if r.achieved_tflops is not None)]
    return ("TFLOP/s", 1.0) if max(rates, default=0.0) >= 1 else ("GFLOP/s", 1e3)


def _rate(value: float) -> str:
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def _peak_line(peak: MachinePeak, unit: str, factor: float) -> str:
    """One line: the measured matmul rates per precision and the copy bandwidth."""
    rates = []
    for precision, tflops in peak.matmul_tflops.items():
        label = f"{precision} (TF32)" if precision == "float32" and peak.float32_tf32 else precision
        rates.append(f"{label} {_rate(tflops * factor)} {unit.replace('FLOP', 'OP') if precision == 'int8' else unit}")
    copy = "" if peak.copy_gb_per_s is None else f"; copy {_rate(peak.copy_gb_per_s)} GB/s"
    size = f"matmul {peak.matmul_size}², " if peak.matmul_size else ""
    copied = f"copy {peak.copy_mb:g} MiB, " if peak.copy_mb else ""
    threads = f", {peak.threads} threads" if peak.threads else ""
    return (f"measured peak on {peak.device or '?'}: {', '.join(rates) or 'no matmul rate'}{copy} "
            f"({size}{copied}median of {peak.repeats or '?'}{threads})")


def format_table(result: dict) -> str:
    """A result's JSON object as Markdown tables (read through :meth:`BenchResult.from_json`)."""
    parsed = BenchResult.from_json(result)
    unit, factor = _rate_unit(parsed)
    lines = [f"machine: {parsed.machine} | torch {parsed.torch} | GFLOP per square image: {parsed.gflop_per_image}",
             f"photos: {', '.join(dict.fromkeys(parsed.photos))} ({len(parsed.photos)} files per end-to-end pass)",
             *([_peak_line(parsed.peak, unit, factor)] if parsed.peak else []),
             *(f"{k}: {v:.2e}" for k, v in parsed.checks.items()), "",
             "| variant | what | resolution | batch | precision | ms / image | images / s | PSNR vs fp32 (dB) "
             f"| peak memory (MB) | {unit} | share of peak |",
             "|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in parsed.rows:
        quality = "" if r.psnr_vs_fp32 is None else f"{r.psnr_vs_fp32:.1f}"
        memory = "" if r.peak_memory_mb is None else f"{r.peak_memory_mb:.0f}"
        rate = "" if r.achieved_tflops is None else _rate(r.achieved_tflops * factor)
        share = "" if r.share_of_peak is None else f"{100 * r.share_of_peak:.1f} %"
        lines.append(f"| {r.variant} | {r.name} | {r.resolution} | {r.batch} | {r.precision} | "
                     f"{r.ms_per_image:.1f} | {r.images_per_second:.2f} | {quality} | {memory} | {rate} | {share} |")
    if parsed.compound:
        lines += ["", "| compound mode | faces | resolution | ms / photo | detect | align | head network | paste |"
                      " background network |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
        for c in parsed.compound:
            share = {k: f"{100 * v:.1f} %" for k, v in c.share.items()}
            ms = "" if c.ms_per_photo is None else f"{c.ms_per_photo:.1f}"
            resolution = "" if c.resolution is None else c.resolution
            lines.append(f"| {c.photo} | {c.faces} | {resolution} | {ms} | "
                         f"{share.get('detect', '')} | {share.get('align', '')} | {share.get('head_network', '')} | "
                         f"{share.get('paste', '')} | {share.get('network', '')} |")
    return "\n".join(lines)
