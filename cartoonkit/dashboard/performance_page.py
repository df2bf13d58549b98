"""Performance page: this machine (hardware.describe) and the stored benchmarks/*.json as charts."""

from __future__ import annotations

import json
from pathlib import Path

from .. import hardware, paths
from . import common


def benchmark_rows(folder: Path | None = None) -> list[dict]:
    """Every row of every ``benchmarks/*.json``, with ``file`` and ``machine`` added."""
    root = paths.project_root()
    folder = folder or (root / "benchmarks" if root else None)
    rows = []
    for path in sorted(folder.glob("*.json")) if folder and folder.is_dir() else []:
        try:
            result = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        for row in result.get("rows", []):
            if {"variant", "name", "resolution", "ms_per_image"} <= row.keys():
                rows.append({**row, "file": path.stem, "machine": result.get("machine", "")})
    return rows


def render(st, settings: common.Settings) -> None:
    st.title("Performance")
    st.subheader("This machine")
    st.code(hardware.describe(), language=None)
    rows = benchmark_rows()
    if not rows:
        st.info("No benchmarks/*.json found.")
        return
    import plotly.express as px

    st.subheader("Stored benchmarks (ms per image, lower is better)")
    for file in sorted({r["file"] for r in rows}):
        subset = [r for r in rows if r["file"] == file]
        figure = px.bar(
            x=[f"{r['variant']} / {r['name']} / batch {r.get('batch', 1)}" for r in subset],
            y=[r["ms_per_image"] for r in subset], color=[str(r["resolution"]) for r in subset],
            barmode="group", labels={"x": "variant / measurement", "y": "ms per image", "color": "resolution"},
            title=f"{file}: {subset[0]['machine']}")
        st.plotly_chart(figure, key=f"bench_{file}")
