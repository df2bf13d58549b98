"""Compare page: one photo over a grid of style weights (columns) x resolutions (rows), downloadable as one PNG."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from .. import analysis
from ..imageio import encode_image, read_image
from ..pipeline import Cartoonizer
from . import common

STYLE_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 0.9, 1.0)
GRID_RESOLUTIONS = (256, 512, 768, 1024, 2048)
CELLS_KEY = "compare_cells"
GRID_KEY = "compare_grid_png"


@dataclass
class Cell:
    style_weight: float
    resolution: int
    image: np.ndarray  # (H, W, 3) uint8
    seconds: float

    @property
    def label(self) -> str:
        return f"style {self.style_weight:g}, {self.resolution}px, {self.seconds * 1000:.0f} ms"


def compare(name: str, data: bytes, style_weights, resolutions, settings: common.Settings,
            cartoonizer: Cartoonizer) -> list[Cell]:
    """Cartoonize one photo at every (resolution, style weight); cells row by row (a row per resolution)."""
    decoded = read_image(data, name=name, limits=cartoonizer.limits)
    cells = []
    for resolution in resolutions:
        for weight in style_weights:
            config = settings.config(style_weight=float(weight), resolution=int(resolution))
            start = time.perf_counter()
            result = cartoonizer.process(decoded, config)
            cells.append(Cell(float(weight), int(resolution), common.to_numpy(result.rgb),
                              time.perf_counter() - start))
    return cells


def grid_png(cells: list[Cell], rows: int, cols: int) -> bytes:
    picture = analysis.grid([c.image for c in cells], rows, cols, labels=[c.label for c in cells])
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
    if st.button("Compare", key="compare_run", type="primary"):
        if not weights or not resolutions:
            st.warning("Pick at least one style weight and one resolution.")
        else:
            name, data = (upload.name, upload.getvalue()) if upload is not None else (sample, samples[sample])
            weights, resolutions = sorted(weights), sorted(resolutions)
            try:
                with st.spinner(f"Cartoonizing {len(weights) * len(resolutions)} variants of {name}..."):
                    cartoonizer = common.load_cartoonizer(settings.model, settings.device, settings.precision)
                    with common.MODEL_LOCK:
                        cells = compare(name, data, weights, resolutions, settings, cartoonizer)
                st.session_state[CELLS_KEY] = (cells, len(resolutions), len(weights), name)
                st.session_state[GRID_KEY] = grid_png(cells, len(resolutions), len(weights))
            except Exception as exc:  # bad image or setting: the message names it
                st.error(str(exc))
                st.session_state.pop(CELLS_KEY, None)
    if CELLS_KEY in st.session_state:
        cells, rows, cols, name = st.session_state[CELLS_KEY]
        for r in range(rows):
            for column, cell in zip(st.columns(cols), cells[r * cols:(r + 1) * cols], strict=True):
                column.image(cell.image, caption=cell.label)
        stem = name.rsplit(".", 1)[0]
        st.download_button("Download the grid (PNG)", st.session_state[GRID_KEY], file_name=f"{stem}-grid.png",
                           mime="image/png", key="compare_download")
