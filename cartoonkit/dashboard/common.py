"""Shared pieces of the dashboard: settings, the cached model, per-file processing (no Streamlit needed)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import torch

from ..config import DENOISE_KERNELS, MAX_UPSCALE, MIN_UPSCALE, CartoonConfig
from ..engine import PRECISIONS
from ..errors import CartoonkitError
from ..imageio import ImageLimits, extension_for, read_image
from ..pipeline import Cartoonizer, CartoonResult
from ..transforms import resize_to
from ..weights import DEFAULT_MODEL, installed_models
from . import jobs

RESOLUTIONS = (512, 768, 1024, 2048)
FORMATS = ("png", "jpg", "webp")
MAX_UPLOAD_MB = 50  # keep in step with server.maxUploadSize in .streamlit/config.toml
MODEL_LOCK = threading.Lock()
"""Serialises use of the shared cartoonizers: sessions run in threads, and OpenCV's face detector (compound
mode) and one device's memory are not meant for concurrent calls."""
STAGE_ORDER = ("decode", "preprocess", "network", "postprocess", "detect", "align", "head_network", "paste",
               "encode")


@dataclass(frozen=True)
class Settings:
    """What the sidebar chose; ``config()`` validates the cartoonization part."""

    model: str = DEFAULT_MODEL
    mode: str = "full"
    style_weight: float = 0.75
    resolution: int = 1024
    format: str = "png"
    quality: int = 95
    device: str = "auto"
    precision: str = "auto"
    upscale: float = 1.0   # preprocessing, see CartoonConfig
    denoise: int = 0
    beautify: float = 0.0
    # Not part of what a result was made with: changing it never marks results as stale.
    time_limit_s: float = field(default=jobs.DEFAULT_TIME_LIMIT_S, compare=False)

    def config(self, **changes) -> CartoonConfig:
        values = dict(style_weight=self.style_weight, resolution=self.resolution, format=self.format,
                      quality=self.quality, mode=self.mode, upscale=self.upscale, denoise=self.denoise,
                      beautify=self.beautify)
        values.update(changes)
        return CartoonConfig(**values)


@dataclass
class Outcome:
    """One uploaded file after processing: either ``result`` (with ``data`` to download) or ``error``."""

    name: str
    error: str | None = None
    result: CartoonResult | None = None
    before: np.ndarray | None = None   # the resized photo, (H, W, 3) uint8
    after: np.ndarray | None = None    # the cartoon, (H, W, 3) uint8
    data: bytes = b""
    file_name: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    seconds: float = 0.0               # wall time of decode to encode, failures included


def device_choices() -> list[str]:
    return ["auto", "cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def model_choices() -> list[str]:
    names = [card.name for card in installed_models()]
    return names or [DEFAULT_MODEL]


def load_cartoonizer(model: str, device: str, precision: str, head_model: str | None = None) -> Cartoonizer:
    """The warm model for these settings, created once per process (``st.cache_resource``)."""
    return _cached_cartoonizer(model, device, precision, head_model)


def _make_cartoonizer(model: str, device: str, precision: str, head_model: str | None) -> Cartoonizer:
    return Cartoonizer(model=model, device=device, precision=precision, head_model=head_model,
                       limits=ImageLimits())


try:  # cached per process when Streamlit is present; plain function otherwise
    import streamlit as _st

    _cached_cartoonizer = _st.cache_resource(show_spinner="Loading the model...")(_make_cartoonizer)
except ImportError:  # pragma: no cover
    import functools

    _cached_cartoonizer = functools.lru_cache(maxsize=4)(_make_cartoonizer)


def to_numpy(rgb: torch.Tensor) -> np.ndarray:
    """``(3, H, W)`` uint8 tensor (any device) -> ``(H, W, 3)`` numpy."""
    return rgb.detach().to("cpu").permute(1, 2, 0).contiguous().numpy()


def process_one(name: str, data: bytes, settings: Settings, cartoonizer: Cartoonizer,
                config: CartoonConfig | None = None) -> Outcome:
    """Decode, cartoonize and encode one file; a problem the user caused becomes ``Outcome.error``."""
    config = config or settings.config()
    timings: dict[str, float] = {}
    start = time.perf_counter()
    try:
        decoded = read_image(data, name=name, limits=cartoonizer.limits)
        timings["decode"] = time.perf_counter() - start
        result = cartoonizer.process(decoded, config, timings)
        encoded = result.encode(config.format, config.quality)
        # The photo at the output's size (not the network's input: that may be upscaled and blurred).
        before = resize_to(decoded.rgb, tuple(result.rgb.shape[-2:]))
    except CartoonkitError as exc:  # InvalidImageError, ConfigError, ... : message names the file / setting
        return Outcome(name=name, error=str(exc), seconds=time.perf_counter() - start)
    return Outcome(name=name, result=result, before=to_numpy(before), after=to_numpy(result.rgb), data=encoded,
                   file_name=Path(name).stem + extension_for(config.format), timings=dict(result.timings),
                   notes=result.notes, seconds=time.perf_counter() - start)


def process_uploads(files: list[tuple[str, bytes]], settings: Settings,
                    cartoonizer: Cartoonizer | None = None) -> list[Outcome]:
    """Process every ``(name, bytes)``; a bad file gives an error outcome and the others still run."""
    cartoonizer = cartoonizer or load_cartoonizer(settings.model, settings.device, settings.precision)
    config = settings.config()  # a bad setting raises ConfigError once, before any file
    with MODEL_LOCK:
        return [process_one(name, data, settings, cartoonizer, config) for name, data in files]


def format_timings(timings: dict[str, float]) -> str:
    """``decode 12 ms · network 310 ms · ... · total 400 ms``, in pipeline order."""
    stages = [s for s in STAGE_ORDER if s in timings] + [s for s in timings if s not in STAGE_ORDER]
    parts = [f"{stage} {timings[stage] * 1000:.0f} ms" for stage in stages]
    parts.append(f"total {sum(timings.values()) * 1000:.0f} ms")
    return " · ".join(parts)


def settings_changes(old: Settings, new: Settings) -> list[str]:
    """``["resolution 1024 (now 512)", ...]``: what differs between the settings of a result and the current ones."""
    return [f"{f.name.replace('_', ' ')} {getattr(old, f.name)} (now {getattr(new, f.name)})"
            for f in fields(Settings) if f.compare and getattr(old, f.name) != getattr(new, f.name)]


def sample_files() -> list[tuple[str, bytes]]:
    from ..samples import sample_photos

    return [(path.name, path.read_bytes()) for path in sample_photos()]


def sidebar(st) -> Settings:
    """Draw the settings in the sidebar and return them."""
    sb = st.sidebar
    sb.header("Settings")
    model = sb.selectbox("Model", model_choices(), key="model")
    mode = sb.radio("Mode", ["full", "compound"], key="mode", horizontal=True,
                    help="compound: a background pass plus one aligned pass per face")
    style_weight = sb.slider("Style weight", 0.0, 1.0, 0.75, 0.05, key="style_weight",
                             help="0 = the photo, 1 = the full cartoon")
    resolution = sb.selectbox("Resolution (long side, px)", RESOLUTIONS, index=RESOLUTIONS.index(1024),
                              key="resolution")
    fmt = sb.selectbox("Output format", FORMATS, key="format")
    quality = sb.slider("Quality (jpg/webp)", 1, 100, 95, key="quality", disabled=fmt == "png")
    pre = sb.expander("Preprocessing")
    upscale = pre.slider("Upscale", MIN_UPSCALE, MAX_UPSCALE, 1.0, 0.1, key="upscale",
                         help="The network runs at resolution x upscale and its result is resized back")
    denoise = pre.select_slider("Denoise (blur kernel)", DENOISE_KERNELS, value=0, key="denoise",
                                help="Gaussian blur of the photo before the network; 0 = off")
    beautify = pre.slider("Beautify", 0.0, 1.0, 0.0, 0.05, key="beautify",
                          help="Strength of an edge-preserving (bilateral) smoothing of the cartoon")
    device = sb.selectbox("Device", device_choices(), key="device")
    precision = sb.selectbox("Precision", PRECISIONS, key="precision",
                             help="auto: float16 on CUDA, bfloat16 on CPUs with fast bf16, else float32; "
                                  "int8: CPU only, the fastest there (about 45 dB from float32); its first "
                                  "run per image shape compiles for 10-30 s")
    time_limit = sb.number_input("Time limit per request (s)", min_value=jobs.MIN_TIME_LIMIT_S,
                                 max_value=jobs.MAX_TIME_LIMIT_S,
                                 value=jobs.default_time_limit(), step=10.0, key="time_limit",
                                 help=f"Long work stops between files once past it; default from {jobs.TIME_LIMIT_ENV}")
    sb.caption(f"Uploads up to {MAX_UPLOAD_MB} MB per file (server.maxUploadSize in .streamlit/config.toml); "
               "images over 64 megapixels are refused.")
    return Settings(model=model, mode=mode, style_weight=float(style_weight), resolution=int(resolution),
                    format=fmt, quality=int(quality), device=device, precision=precision,
                    upscale=round(float(upscale), 2), denoise=int(denoise), beautify=round(float(beautify), 2),
                    time_limit_s=float(time_limit))


# --------------------------------------------------------------------------- long work on a page


def run_buttons(st, label: str, run_key: str, stop_key: str) -> tuple[bool, bool]:
    """The page's primary button and its Stop button side by side; returns (run clicked, stop clicked)."""
    left, right, _ = st.columns([1, 2, 3])
    run = left.button(label, key=run_key, type="primary")
    stop = right.button("Stop and keep results", key=stop_key,
                        help="Stops after the item being processed; what is done so far stays on the page")
    return run, stop


def photo_request(st, job_key: str, run_label: str, key_prefix: str = "",
                  help: str = f"Any image file, up to {MAX_UPLOAD_MB} MB each") -> list[tuple[str, bytes]] | None:
    """The uploader, the sample-portraits box and the run/Stop buttons of a page that cartoonizes photos.

    Settles the job of an earlier run this click replaced; returns the ``(name, bytes)`` to cartoonize when
    the run button was clicked with something to do, else ``None`` (with a warning when there was nothing)."""
    uploads = st.file_uploader("Photos", type=None, accept_multiple_files=True, key=f"{key_prefix}uploads",
                               help=help)
    use_samples = st.checkbox("Use sample portraits", key=f"{key_prefix}use_samples")
    run, stop = run_buttons(st, run_label, f"{key_prefix}run", f"{key_prefix}stop")
    settle(st, job_key, stop)
    if not run:
        return None
    files = [(f.name, f.getvalue()) for f in uploads or []] + (sample_files() if use_samples else [])
    if not files:
        st.warning("Upload photos or tick 'Use sample portraits' first.")
        st.session_state.pop(job_key, None)
        return None
    return files


def settle(st, job_key: str, stop_clicked: bool) -> None:
    """Stop the earlier run's job that this rerun replaces (see :func:`jobs.settle`), visibly when it has to wait."""
    job = st.session_state.get(job_key)
    if job is not None and job.state == "running":
        with st.spinner("Stopping: the item in progress finishes first..."):
            jobs.settle(job, stop_clicked)


def run_job(st, job_key: str, items: list, labels: list[str], fn, settings: Settings,
            unit: str = "files", meta=None, on_result=None, area=None) -> jobs.Job:
    """Run ``fn`` over ``items`` one at a time under the model lock, with a progress bar, the Stop button's flag
    and the sidebar's time limit; the job (results so far included) lives in ``st.session_state[job_key]``.
    ``on_result(result, index)``, if given, draws each result as it comes; the bar goes into ``area`` if given."""
    bar = (area if area is not None else st).progress(0.0, text=f"0 of {len(items)} {unit}")
    # No Streamlit call from here to run_with_limit: a rerun could stop this run there and leave a job
    # that never sets ``finished`` for the next run to wait on.
    job = jobs.Job(total=len(items), settings=settings, limit_s=settings.time_limit_s, labels=list(labels),
                   meta=meta)
    st.session_state[job_key] = job

    def locked(item):
        with MODEL_LOCK:  # per item, so that other sessions' requests interleave with a long batch
            return fn(item)

    def progress(job: jobs.Job, item) -> None:  # a Streamlit call: where a rerun may stop this one
        bar.progress(job.done / job.total, text=f"{job.done} of {job.total} {unit}: {job.labels[job.done - 1]}")
        if on_result is not None:
            on_result(job.results[-1], job.done - 1)

    jobs.run_with_limit(job, items, locked, on_progress=progress)
    bar.empty()
    return job


def show_job_state(st, job: jobs.Job, settings: Settings, action: str, unit: str = "files") -> None:
    """Why the job ended early (if it did) and whether its results were made with other settings."""
    if job.state == "time_limit" or job.state == "failed":
        st.error(job.message(unit))
    elif job.state in ("stopped", "interrupted"):
        st.warning(job.message(unit))
    changes = settings_changes(job.settings, settings) if job.settings is not None else []
    if changes:
        st.warning(f"These results were made with other settings: {'; '.join(changes)}. "
                   f"Press {action} to update.")
