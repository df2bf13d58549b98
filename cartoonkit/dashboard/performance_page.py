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

from .. import hardware, paths
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
    with common.MODEL_LOCK:  # alone on the machine, or the numbers mean little
        result = run_benchmarks(SHORT_RESOLUTIONS, repeats=1, device=settings.engine.device, model=settings.model,
                                variants=SHORT_VARIANTS, batch_sizes=SHORT_BATCHES, end_to_end=False,
                                print_table=False)
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


def peers_figure(rows: list[dict]):
    """cartoonkit's variants against the peers, for every (file, measurement, resolution) that has both."""
    import plotly.express as px

    with_peer = ({(r["file"], r["name"], r["resolution"]) for r in rows if is_peer(r["variant"])}
                 & {(r["file"], r["name"], r["resolution"]) for r in rows if not is_peer(r["variant"])})
    points = [{**r, "what": f"{r['name']} {r['resolution']}px ({r['file']})",
               "who": ("peer: " if is_peer(r["variant"]) else "cartoonkit: ") + r["variant"]}
              for r in rows if (r["file"], r["name"], r["resolution"]) in with_peer and r["batch"] == 1]
    if not points:
        return None
    return px.bar(_frame(points), x="what", y="ms_per_image", color="who", barmode="group",
                  labels={"what": "measurement", "ms_per_image": "ms per image", "who": ""},
                  title="cartoonkit against other runtimes (ms per image, lower is better)")


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
                  title="Stage times of your last Cartoonize run (ms)")


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
    st.code(hardware.describe(), language=None)

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
    st.subheader("Charts")
    job = st.session_state.get("cartoonize_job")
    figures = [("bench_batch", batch_figure(rows)), ("bench_resolution", resolution_figure(rows)),
               ("bench_peers", peers_figure(rows)), ("bench_stages", stage_figure(job.results if job else [])),
               ("bench_compound", compound_figure(compound))]
    for key, figure in figures:
        if figure is not None:
            st.plotly_chart(figure, key=key)
    if job is None:
        st.caption("Cartoonize some photos to see their stage times here.")

    st.subheader("Every result file (ms per image, lower is better)")
    for file in dict.fromkeys(r["file"] for r in rows):
        st.plotly_chart(file_figure(rows, file), key=f"bench_file_{file}")


def _stored_dir() -> Path | None:
    root = paths.project_root()
    return root / "benchmarks" if root else None
