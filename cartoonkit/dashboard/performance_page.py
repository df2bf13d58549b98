"""Performance page: this machine, a short benchmark run here, and charts of benchmarks/*.json and those runs.

Results are read through :class:`~cartoonkit.bench.results.BenchResult`, leniently: a JSON file (hand-written,
older, cut short) missing a field loses that row or that chart, never the page. The charts are built by plain
functions (plotly figures, no Streamlit).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import torch

from .. import doctor, hardware, paths
from ..bench.results import BenchResult, save_json
from ..bench.variants import VARIANTS
from . import common

RUNS_KEY = "performance_runs"  # benchmark results run from this page in this session
RESULTS_DIR: Path | None = None
"""Where runs from this page are saved; None: ``bench-results/`` in the checkout (git-ignored), else the cache."""
SHORT_RESOLUTIONS = [256]
SHORT_VARIANTS = ["eager-fp32", "channels_last-reduced"]
SHORT_BATCHES = [1, 2]


def results_dir() -> Path:
    if RESULTS_DIR is not None:
        return RESULTS_DIR
    root = paths.project_root()
    return root / "bench-results" if root else paths.cache_dir() / "bench-results"


def read_results(result: dict, file: str) -> tuple[list[dict], list[dict]]:
    """(rows, compound entries) of one benchmark result's JSON, as dicts for the charts (with ``file``; rows with
    ``machine`` too)."""
    parsed = BenchResult.from_json(result)
    rows = [{**asdict(row), "file": file, "machine": parsed.machine} for row in parsed.rows]
    compound = [{"photo": c.photo, "faces": c.faces, "resolution": "" if c.resolution is None else c.resolution,
                 "share": c.share, "file": file} for c in parsed.compound]
    return rows, compound


def load_results(folder: Path | None) -> list[tuple[str, dict]]:
    """``(file stem, parsed JSON)`` of every ``*.json`` in ``folder`` that parses (:func:`read_results` reads it)."""
    results = []
    for path in sorted(folder.glob("*.json")) if folder and folder.is_dir() else []:
        try:
            results.append((path.stem, json.loads(path.read_text())))
        except (OSError, ValueError):
            continue
    return results


def benchmark_rows(folder: Path | None = None) -> list[dict]:
    """Every usable row of every ``benchmarks/*.json``, with ``file`` and ``machine`` added."""
    root = paths.project_root()
    folder = folder or (root / "benchmarks" if root else None)
    return [row for file, result in load_results(folder) for row in read_results(result, file)[0]]


def is_peer(variant: str) -> bool:
    """Rows of other runtimes (ONNX Runtime, TFLite, the naive pipeline): variants that are not cartoonkit's."""
    return variant not in VARIANTS


def run_short_benchmark(settings: common.Settings) -> tuple[str, dict]:
    """A few seconds of ``cartoonkit bench``: network alone, 256 px, batch 1 and 2."""
    from ..bench.run import run_benchmarks

    name = time.strftime("dashboard-%Y%m%d-%H%M%S")
    with common.ENGINE_QUEUE:  # alone on the machine, or the numbers mean little
        result = run_benchmarks(SHORT_RESOLUTIONS, repeats=1, device=settings.engine_options.device,
                                model=settings.model, variants=SHORT_VARIANTS, batch_sizes=SHORT_BATCHES,
                                end_to_end=False, print_table=False)
    return name, result


def save_result(name: str, result: dict, folder: Path | None = None) -> Path:
    return save_json(result, (folder or results_dir()) / f"{name}.json")


# --------------------------------------------------------------------------- charts (plotly figures or None)


def _frame(rows: list[dict]):
    import pandas as pd

    return pd.DataFrame(rows)


def file_figure(rows: list[dict], file: str):
    import plotly.express as px

    subset = [r for r in rows if r["file"] == file]
    return px.bar(
        x=[f"{r['variant']} / {r['name']} / batch {r['batch']}" for r in subset],
        y=[r["ms_per_image"] for r in subset], color=[str(r["resolution"]) for r in subset],
        barmode="group", labels={"x": "variant / measurement", "y": "ms per image", "color": "resolution"},
        title=f"{file}: {subset[0]['machine']}")


def batch_figure(rows: list[dict]):
    """Images per second against batch size (network alone), one line per file, variant and resolution."""
    import plotly.express as px

    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if r["name"] == "model":
            groups.setdefault((r["file"], r["variant"], r["resolution"]), []).append(r)
    points = [{**r, "series": f"{v} {res}px ({f})"} for (f, v, res), g in groups.items()
              if len({r["batch"] for r in g}) > 1 for r in sorted(g, key=lambda r: r["batch"])]
    if not points:
        return None
    return px.line(_frame(points), x="batch", y="images_per_second", color="series", markers=True,
                   labels={"batch": "batch size", "images_per_second": "images per second", "series": ""},
                   title="Throughput against batch size (network alone, higher is better)")


def resolution_figure(rows: list[dict]):
    """Images per second against resolution (network alone, batch 1), a line per variant: the median over the
    result files that measured it (one line per file would bury the trend under the legend)."""
    import statistics

    import plotly.express as px

    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if r["name"] == "model" and r["batch"] == 1:
            groups.setdefault((r["variant"], r["resolution"]), []).append(r)
    points = [{"variant": variant, "resolution": resolution, "files": len(g),
               "images_per_second": statistics.median(r["images_per_second"] for r in g)}
              for (variant, resolution), g in sorted(groups.items())]
    if len({p["resolution"] for p in points}) < 2:
        return None
    return px.line(_frame(points), x="resolution", y="images_per_second", color="variant", markers=True,
                   log_y=True, hover_data=["files"],
                   labels={"resolution": "long side (px)", "images_per_second": "images per second (median)"},
                   title="Throughput against resolution (network alone, batch 1, higher is better)")


def _model_rows(rows: list[dict], file: str) -> list[dict]:
    return [r for r in rows if r["file"] == file and r["name"] == "model" and r["batch"] == 1]


def comparison_file(rows: list[dict], machine: str | None = None) -> str | None:
    """The result file to answer "how much faster than the alternatives" from: of the files measured on
    ``machine`` (as ``cartoonkit bench`` describes it; all files when none was), the one with the most peer
    rows at resolutions where cartoonkit was measured too; None when no file has such a pair."""
    def pairs(file: str) -> int:   # peer rows at a resolution where cartoonkit was measured too
        model = _model_rows(rows, file)
        ours = {r["resolution"] for r in model if not is_peer(r["variant"])}
        return sum(1 for r in model if is_peer(r["variant"]) and r["resolution"] in ours)

    files = list(dict.fromkeys(r["file"] for r in rows))
    here = [f for f in files if machine and any(r["file"] == f and r.get("machine") == machine for r in rows)]
    scored = [(pairs(f), f) for f in (here or files)]
    best = max(scored, default=(0, None))
    return best[1] if best[0] else None


def _fastest_good(rows: list[dict], min_psnr: float) -> dict | None:
    """cartoonkit's fastest row whose PSNR against float32 is at least ``min_psnr`` (or unmeasured: float32)."""
    good = [r for r in rows if not is_peer(r["variant"])
            and (r.get("psnr_vs_fp32") is None or r["psnr_vs_fp32"] >= min_psnr)]
    return min(good, key=lambda r: r["ms_per_image"], default=None)


def speedup_figure(rows: list[dict], machine: str | None = None, min_psnr: float = 40.0):
    """How much faster cartoonkit's fastest engine (at >= ``min_psnr`` dB) is than each other runtime: one bar
    per peer and resolution, from one result file (:func:`comparison_file`). Above 1 = cartoonkit is faster."""
    import plotly.express as px

    file = comparison_file(rows, machine)
    if file is None:
        return None
    model = _model_rows(rows, file)
    points = []
    for resolution in sorted({r["resolution"] for r in model}):
        at = [r for r in model if r["resolution"] == resolution]
        ours = _fastest_good(at, min_psnr)
        if ours is None:
            continue
        for peer in (r for r in at if is_peer(r["variant"])):
            ratio = peer["ms_per_image"] / ours["ms_per_image"]
            points.append({"alternative": peer["variant"], "resolution": f"{resolution} px", "ratio": ratio,
                           "label": f"{ratio:.2f}×", "ours": f"{ours['variant']} ({ours['ms_per_image']:.0f} ms)",
                           "theirs": f"{peer['ms_per_image']:.0f} ms",
                           "psnr": "" if peer.get("psnr_vs_fp32") is None else f"{peer['psnr_vs_fp32']:.1f} dB"})
    if not points:
        return None
    machine_name = next((r.get("machine") for r in model if r.get("machine")), "") or "machine not recorded"
    figure = px.bar(_frame(points), x="alternative", y="ratio", color="resolution", barmode="group", text="label",
                    hover_data=["ours", "theirs", "psnr"],
                    labels={"alternative": "", "ratio": "cartoonkit is N× faster", "resolution": ""},
                    title=f"How much faster than each alternative ({file}: {machine_name})")
    figure.add_hline(y=1.0, line_dash="dot", annotation_text="as fast")
    return figure


def quality_figure(rows: list[dict], machine: str | None = None):
    """What each precision costs in quality: PSNR against float32 per engine, from the comparison file (or the
    first file that measured PSNR), with the 40 dB bar and the 44 dB that ``auto`` keeps."""
    import plotly.express as px

    files = [comparison_file(rows, machine)] + list(dict.fromkeys(r["file"] for r in rows))
    for file in [f for f in files if f]:
        measured = {}
        for r in _model_rows(rows, file):
            psnr = r.get("psnr_vs_fp32")
            if psnr is not None and psnr != float("inf"):
                key = (r["variant"], r.get("precision") or "")
                measured[key] = max(measured.get(key, 0.0), min(psnr, 80.0))   # > 80 dB: identical to the eye
        if measured:
            points = [{"engine": f"{variant} ({precision})" if precision else variant, "psnr": psnr,
                       "who": "peer" if is_peer(variant) else "cartoonkit"}
                      for (variant, precision), psnr in sorted(measured.items(), key=lambda kv: -kv[1])]
            figure = px.bar(_frame(points), x="engine", y="psnr", color="who",
                            labels={"engine": "", "psnr": "PSNR against float32 (dB, higher is closer)", "who": ""},
                            title=f"What precision costs in quality ({file}; capped at 80 dB)")
            figure.add_hline(y=44.0, line_dash="dot", annotation_text="44 dB: what auto keeps")
            figure.add_hline(y=40.0, line_dash="dash", annotation_text="40 dB")
            return figure
    return None


def stage_figure(outcomes: list) -> object | None:
    """ms per stage of each photo of a Cartoonize run, stacked."""
    import plotly.express as px

    points = []
    for outcome in outcomes:
        timings = getattr(outcome, "timings", None) or {}
        order = [s for s in common.STAGE_ORDER if s in timings] + sorted(set(timings) - set(common.STAGE_ORDER))
        points += [{"photo": outcome.name, "stage": stage, "ms": timings[stage] * 1000} for stage in order]
    if not points:
        return None
    return px.bar(_frame(points), x="photo", y="ms", color="stage",
                  title="Where the time of one photo goes (your last Cartoonize run, ms per stage)")


def compound_figure(compound: list[dict]):
    """Share of each stage in compound mode, from the stored benchmarks."""
    import plotly.express as px

    points = [{"photo": f"{c['photo']} ({c['faces']} face(s), {c['resolution']}px, {c['file']})", "stage": stage,
               "percent": 100 * share} for c in compound for stage, share in c["share"].items()]
    if not points:
        return None
    return px.bar(_frame(points), x="photo", y="percent", color="stage",
                  title="Compound mode: share of each stage (benchmarks)")


# --------------------------------------------------------------------------- the page


def render(st, settings: common.Settings) -> None:
    st.title("Performance")
    st.subheader("This machine")
    from ..options import precision_name

    st.markdown(f"**`precision auto` picks here:** {precision_name('auto', 'cpu')} on the CPU"
                + (" (run `cartoonkit warmup`, or let the dashboard's background warm-up finish, for int8)"
                   if precision_name('auto', 'cpu') != "int8" and hardware.cpu_supports_fast_int8() else ""))
    st.code(doctor.describe(), language=None, wrap_lines=True)

    st.subheader("Run a short benchmark here")
    st.caption(f"Network alone at {SHORT_RESOLUTIONS[0]} px, batch {' and '.join(map(str, SHORT_BATCHES))}, "
               f"variants {', '.join(SHORT_VARIANTS)}; model and device from the sidebar. It takes the model "
               f"lock, so other sessions wait. Saved under {results_dir()}.")
    runs = st.session_state.setdefault(RUNS_KEY, [])
    if st.button("Run benchmark", key="bench_run"):
        try:
            with st.spinner("Benchmarking..."):
                runs.append(run_short_benchmark(settings))
        except Exception as exc:  # a missing model or device: say so, keep the page
            st.error(f"The benchmark failed: {exc}")
        else:
            try:  # kept in this session even where it cannot be saved
                st.caption(f"Saved as {save_result(*runs[-1])}.")
            except OSError as exc:
                st.warning(f"Could not save the result: {exc}")

    stored = load_results(_stored_dir())
    saved = {name for name, _ in runs}
    here = runs + [(name, result) for name, result in load_results(results_dir()) if name not in saved]
    rows, compound = [], []
    for file, result in stored + here:
        file_rows, file_compound = read_results(result, file)
        rows += file_rows
        compound += file_compound
    if not rows:
        st.info("No benchmark results yet: run one above, or `make bench`.")
    st.subheader("Charts: one question each")
    job = st.session_state.get("cartoonize_job")
    from ..bench.run import machine_description

    machine = machine_description(torch.device("cpu"))
    figures = [("bench_peers", speedup_figure(rows, machine)),
               ("bench_stages", stage_figure(job.results if job else [])),
               ("bench_quality", quality_figure(rows, machine)),
               ("bench_batch", batch_figure(rows)), ("bench_resolution", resolution_figure(rows)),
               ("bench_compound", compound_figure(compound))]
    for key, figure in figures:
        if figure is not None:
            st.plotly_chart(figure, key=key)
    if job is None:
        st.caption("Cartoonize some photos to see where their time goes here.")

    with st.expander("Every result file (ms per image, lower is better)"):
        for file in dict.fromkeys(r["file"] for r in rows):
            st.plotly_chart(file_figure(rows, file), key=f"bench_file_{file}")


def _stored_dir() -> Path | None:
    root = paths.project_root()
    return root / "benchmarks" if root else None
