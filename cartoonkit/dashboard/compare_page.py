"""Compare page: one photo over a grid of one or two settings (columns x rows), downloadable as one PNG.

Any of the sidebar's settings can be an axis (style weight x resolution, model x mode, denoise x upscale,
...); every other setting comes from the sidebar.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from itertools import product

import numpy as np
import torch

from .. import analysis
from ..imageencode import encode_image
from ..imageio import DecodedImage, read_image
from ..options import PRECISIONS
from . import common

STYLE_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 0.9, 1.0)
GRID_RESOLUTIONS = (256, 512, 768, 1024, 2048)
NO_AXIS = "none"
JOB_KEY = "compare_job"  # the cells, row by row, as a jobs.Job; its meta: (rows, cols, photo name, axes varied)
GRID_KEY = "compare_grid_png"  # (the job it was built from, PNG bytes)


# How a cell label shows one value of each setting the grid can vary.
VALUE_TEMPLATES = {"style_weight": "style {:g}", "resolution": "{}px", "model": "{}", "mode": "{}",
                   "upscale": "upscale {:g}", "denoise": "denoise {}", "beautify": "beautify {:g}", "precision": "{}"}


def value_text(setting: str, value) -> str:
    return VALUE_TEMPLATES.get(setting, f"{setting} {{}}").format(value)


@dataclass(frozen=True)
class Axis:
    """A setting a grid can vary (a flat name of :class:`common.Settings`), the values offered and preselected."""

    field: str
    label: str
    values: tuple
    default: tuple


def axes() -> dict[str, Axis]:
    """Every setting the grid can vary, with the values that make sense on this machine."""
    precisions = tuple(p for p in PRECISIONS if p not in ("float16", "float8") or torch.cuda.is_available())
    models = tuple(common.model_choices())
    return {axis.field: axis for axis in (
        Axis("style_weight", "Style weight", STYLE_WEIGHTS, (0.5, 0.75, 0.9)),
        Axis("resolution", "Resolution", GRID_RESOLUTIONS, (512, 1024)),
        Axis("model", "Model", models, models[:2]),
        Axis("mode", "Mode", ("full", "compound"), ("full", "compound")),
        Axis("upscale", "Upscale", (1.0, 1.2, 1.5, 2.0), (1.0, 1.2)),
        Axis("denoise", "Denoise", (0, 3, 5, 7), (0, 3)),
        Axis("beautify", "Beautify", (0.0, 0.25, 0.5, 1.0), (0.0, 0.5)),
        Axis("precision", "Precision", precisions, ("float32", "auto")),
    )}


@dataclass
class Cell:
    changes: tuple[tuple[str, object], ...]  # (setting, value) of this cell's row and column
    image: np.ndarray  # (H, W, 3) uint8
    seconds: float

    @property
    def label(self) -> str:
        parts = [value_text(name, value) for name, value in self.changes]
        return ", ".join(parts + [f"{self.seconds * 1000:.0f} ms"])


def cell_settings(columns: tuple[str, list], rows: tuple[str, list] | None = None) -> list[dict]:
    """The setting changes of every cell, row by row: ``columns`` and ``rows`` are ``(setting, values)``."""
    row_values = [(rows[0], v) for v in rows[1]] if rows else [None]
    return [dict(c for c in (r, (columns[0], v)) if c is not None) for r, v in product(row_values, columns[1])]


def make_cell(decoded: DecodedImage, changes: dict, settings: common.Settings) -> Cell:
    """One cell: the sidebar's settings with this cell's ``changes``; the model for them is loaded once."""
    chosen = settings.changed(**changes)
    cartoonizer = common.load_cartoonizer(chosen.model, chosen.engine_options)
    start = time.perf_counter()
    result = cartoonizer.process(decoded, chosen.config)
    return Cell(tuple(changes.items()), common.to_numpy(result.rgb), time.perf_counter() - start)


def grid_png(cells: list[Cell], rows: int, cols: int) -> bytes:
    """The cells as one labelled PNG; cells a stopped run did not reach are left blank."""
    images, labels = [c.image for c in cells], [c.label for c in cells]
    blank = np.full_like(images[-1], 255) if images else np.full((8, 8, 3), 255, np.uint8)
    images += [blank] * (rows * cols - len(cells))
    labels += ["(not run)"] * (rows * cols - len(cells))
    picture = analysis.grid(images, rows, cols, labels=labels)
    return encode_image(torch.from_numpy(picture).permute(2, 0, 1), format="png")


def render(st, settings: common.Settings) -> None:
    st.title("Compare settings")
    upload = st.file_uploader("Photo", type=common.UPLOAD_TYPES, accept_multiple_files=False, key="compare_upload",
                              help=common.UPLOAD_HELP)
    samples = {name: data for name, data in common.sample_files()}
    sample = st.selectbox("...or a sample portrait", list(samples), key="compare_sample")
    every = axes()
    left, right = st.columns(2)
    column_axis = left.selectbox("Columns", list(every), index=list(every).index("style_weight"),
                                 format_func=lambda k: every[k].label, key="compare_columns")
    row_choices = [NO_AXIS] + [k for k in every if k != column_axis]
    row_axis = right.selectbox("Rows", row_choices,
                               index=row_choices.index("resolution") if "resolution" in row_choices else 0,
                               format_func=lambda k: "(one row)" if k == NO_AXIS else every[k].label,
                               key="compare_rows")
    column_values = _values(left, every[column_axis])
    row_values = _values(right, every[row_axis]) if row_axis != NO_AXIS else None
    varied = [column_axis] + ([row_axis] if row_axis != NO_AXIS else [])
    st.caption("Everything else comes from the sidebar: "
               + ", ".join(f"{k.replace('_', ' ')} {settings.value(k)}" for k in every if k not in varied) + ".")
    run, stop = common.run_buttons(st, "Compare", "compare_run", "compare_stop")
    common.settle(st, JOB_KEY, stop)  # the job of an earlier run this click replaced
    if run:
        if not column_values or row_values == []:
            st.warning("Pick at least one value for the columns and for the rows.")
        else:
            name, data = (upload.name, upload.getvalue()) if upload is not None else (sample, samples[sample])
            rows = (row_axis, row_values) if row_values is not None else None
            start(st, name, data, (column_axis, column_values), rows, settings)
    job = st.session_state.get(JOB_KEY)
    if job is None:
        return
    rows, cols, name, varied = job.meta
    common.show_job_state(st, job, grid_relevant(settings, varied), "Compare", unit="cells")
    cells = job.results
    for r in range(rows):
        row = cells[r * cols:(r + 1) * cols]
        if not row:
            break
        for column, cell in zip(st.columns(cols), row, strict=False):
            column.image(cell.image, caption=cell.label)
    built = st.session_state.get(GRID_KEY)
    if cells and (built is None or built[0] is not job):
        built = st.session_state[GRID_KEY] = (job, grid_png(cells, rows, cols))
    if cells:
        stem = name.rsplit(".", 1)[0]
        st.download_button("Download the grid (PNG)", built[1], file_name=f"{stem}-grid.png",
                           mime="image/png", key="compare_download")


def _values(where, axis: Axis) -> list:
    """The chosen values of ``axis``, in the axis's own order (one widget per axis keeps each one's choice)."""
    chosen = where.multiselect(f"{axis.label} values", axis.values, default=list(axis.default),
                               key=f"compare_values_{axis.field}")
    return [v for v in axis.values if v in chosen]


def start(st, name: str, data: bytes, columns: tuple[str, list], rows: tuple[str, list] | None,
          settings: common.Settings) -> None:
    """Decode once, then one job item per grid cell (progress, Stop and the time limit work between cells)."""
    cells = cell_settings(columns, rows)
    try:
        for changes in cells:  # a bad setting: one message, before any cell
            settings.changed(**changes)
        cartoonizer = common.load_cartoonizer(settings.model, settings.engine_options)
        decoded = read_image(data, name=name, limits=cartoonizer.limits)
    except Exception as exc:  # bad image, bad setting or missing model: the message names it
        st.error(str(exc))
        st.session_state.pop(JOB_KEY, None)
        return
    varied = tuple(axis for axis, _ in filter(None, (columns, rows)))
    labels = [", ".join(f"{k} {v}" for k, v in changes.items()) for changes in cells]
    common.run_job(st, JOB_KEY, cells, labels, lambda changes: make_cell(decoded, changes, settings),
                   grid_relevant(settings, varied), unit="cells",
                   meta=(len(rows[1]) if rows else 1, len(columns[1]), name, varied))


def grid_relevant(settings: common.Settings, varied: tuple[str, ...] = ()) -> common.Settings:
    """The sidebar settings that matter to a grid: not the ones its axes vary, and not the output format
    (the grid is a PNG)."""
    defaults = common.Settings()
    return settings.changed(format="png", quality=95, **{k: defaults.value(k) for k in varied})
