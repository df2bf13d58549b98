"""Compare page: one photo over a grid of style weights (columns) x resolutions (rows), downloadable as one PNG."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np
import torch

from .. import analysis
from ..imageio import DecodedImage, encode_image, read_image
from ..pipeline import Cartoonizer
from . import common

STYLE_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 0.9, 1.0)
GRID_RESOLUTIONS = (256, 512, 768, 1024, 2048)
JOB_KEY = "compare_job"      # the cells, row by row, as a jobs.Job; its meta: (rows, cols, photo name)
GRID_KEY = "compare_grid_png"  # (the job it was built from, PNG bytes)


@dataclass
class Cell:
    style_weight: float
    resolution: int
    image: np.ndarray  # (H, W, 3) uint8
    seconds: float

    @property
    def label(self) -> str:
        return f"style {self.style_weight:g}, {self.resolution}px, {self.seconds * 1000:.0f} ms"


def cell_settings(style_weights, resolutions) -> list[tuple[int, float]]:
    """(resolution, style weight) per cell, row by row: a row per resolution."""
    return [(int(r), float(w)) for r in resolutions for w in style_weights]


def make_cell(decoded: DecodedImage, resolution: int, weight: float, settings: common.Settings,
              cartoonizer: Cartoonizer) -> Cell:
    config = settings.config(style_weight=weight, resolution=resolution)
    start = time.perf_counter()
    result = cartoonizer.process(decoded, config)
    return Cell(weight, resolution, common.to_numpy(result.rgb), time.perf_counter() - start)


def compare(name: str, data: bytes, style_weights, resolutions, settings: common.Settings,
            cartoonizer: Cartoonizer) -> list[Cell]:
    """Cartoonize one photo at every (resolution, style weight); cells row by row (a row per resolution)."""
    decoded = read_image(data, name=name, limits=cartoonizer.limits)
    return [make_cell(decoded, r, w, settings, cartoonizer) for r, w in cell_settings(style_weights, resolutions)]


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
    upload = st.file_uploader("Photo", accept_multiple_files=False, key="compare_upload")
    samples = {name: data for name, data in common.sample_files()}
    sample = st.selectbox("...or a sample portrait", list(samples), key="compare_sample")
    weights = st.multiselect("Style weights (columns)", STYLE_WEIGHTS, default=[0.5, 0.75, 0.9],
                             key="compare_weights")
    resolutions = st.multiselect("Resolutions (rows)", GRID_RESOLUTIONS, default=[512, 1024],
                                 key="compare_resolutions")
    st.caption(f"Mode, model, device and precision come from the sidebar ({settings.mode}, {settings.model}).")
    run, stop = common.run_buttons(st, "Compare", "compare_run", "compare_stop")
    common.settle(st, JOB_KEY, stop)  # the job of an earlier run this click replaced
    if run:
        if not weights or not resolutions:
            st.warning("Pick at least one style weight and one resolution.")
        else:
            name, data = (upload.name, upload.getvalue()) if upload is not None else (sample, samples[sample])
            start(st, name, data, sorted(weights), sorted(resolutions), settings)
    job = st.session_state.get(JOB_KEY)
    if job is None:
        return
    rows, cols, name = job.meta
    common.show_job_state(st, job, grid_relevant(settings), "Compare", unit="cells")
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


def start(st, name: str, data: bytes, weights: list[float], resolutions: list[int],
          settings: common.Settings) -> None:
    """Decode once, then one job item per grid cell (progress, Stop and the time limit work between cells)."""
    try:
        cartoonizer = common.load_cartoonizer(settings.model, settings.device, settings.precision)
        settings.config()  # a bad setting: one message, before any cell
        decoded = read_image(data, name=name, limits=cartoonizer.limits)
    except Exception as exc:  # bad image, bad setting or missing model: the message names it
        st.error(str(exc))
        st.session_state.pop(JOB_KEY, None)
        return
    cells = cell_settings(weights, resolutions)
    common.run_job(st, JOB_KEY, cells, [f"{r}px, style {w:g}" for r, w in cells],
                   lambda cell: make_cell(decoded, cell[0], cell[1], settings, cartoonizer), grid_relevant(settings),
                   unit="cells", meta=(len(resolutions), len(weights), name))


def grid_relevant(settings: common.Settings) -> common.Settings:
    """The sidebar settings that matter to a grid: its cells choose their own style weight and resolution, and
    the grid is a PNG whatever the output format."""
    return replace(settings, style_weight=0.0, resolution=0, format="png", quality=95)
