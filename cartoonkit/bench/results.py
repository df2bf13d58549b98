"""The schema of a benchmark result: what ``cartoonkit bench --json`` writes and the dashboard reads.

A result is a JSON object: ``machine``, ``torch``, ``photos``, ``gflop_per_image``, ``checks``, ``rows`` (one
:class:`BenchRow` each) and ``compound`` (one :class:`CompoundRow` each). :meth:`BenchResult.from_json` reads
leniently: a file that is hand-written, older or cut short loses the rows it cannot use, never the whole file;
fields it no longer knows (``flop_fraction`` of older files) are ignored. No torch here.
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
                   peak_memory_mb=_number(data.get("peak_memory_mb")))


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

    def to_json(self) -> dict:
        """The JSON object (a dict of JSON values) that ``cartoonkit bench --json`` writes."""
        return {"machine": self.machine, "torch": self.torch, "photos": list(self.photos),
                "gflop_per_image": dict(self.gflop_per_image), "checks": dict(self.checks),
                "rows": [r.to_json() for r in self.rows], "compound": [c.to_json() for c in self.compound]}

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
                   compound=[c for c in map(CompoundRow.from_json, listed("compound")) if c is not None])


def save_json(result: dict, path: Path) -> Path:
    """Write a result's JSON object (:meth:`BenchResult.to_json`) to ``path``; its folder is created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path


def format_table(result: dict) -> str:
    """A result's JSON object as Markdown tables (read through :meth:`BenchResult.from_json`)."""
    parsed = BenchResult.from_json(result)
    lines = [f"machine: {parsed.machine} | torch {parsed.torch} | GFLOP per square image: {parsed.gflop_per_image}",
             f"photos: {', '.join(dict.fromkeys(parsed.photos))} ({len(parsed.photos)} files per end-to-end pass)",
             *(f"{k}: {v:.2e}" for k, v in parsed.checks.items()), "",
             "| variant | what | resolution | batch | precision | ms / image | images / s | PSNR vs fp32 (dB) "
             "| peak memory (MB) |",
             "|---|---|---:|---:|---|---:|---:|---:|---:|"]
    for r in parsed.rows:
        quality = "" if r.psnr_vs_fp32 is None else f"{r.psnr_vs_fp32:.1f}"
        memory = "" if r.peak_memory_mb is None else f"{r.peak_memory_mb:.0f}"
        lines.append(f"| {r.variant} | {r.name} | {r.resolution} | {r.batch} | {r.precision} | "
                     f"{r.ms_per_image:.1f} | {r.images_per_second:.2f} | {quality} | {memory} |")
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
