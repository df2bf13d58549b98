"""Shared pieces of the dashboard: settings, the cached model, per-file processing (no Streamlit needed)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import settings as declarations
from ..config import DEFAULT_MODEL, CartoonConfig
from ..errors import CartoonkitError
from ..formats import IMAGE_SUFFIXES, READ_FORMAT_NAMES, ImageLimits, extension_for
from ..imageio import read_image
from ..options import EngineOptions
from ..pipeline import Cartoonizer, CartoonResult
from ..transforms import resize_to
from ..weights import installed_models
from . import jobs, warm
from .engine_queue import EngineQueue

MAX_UPLOAD_MB = 50  # keep in step with server.maxUploadSize in .streamlit/config.toml
UPLOAD_TYPES = sorted(suffix.lstrip(".") for suffix in IMAGE_SUFFIXES)
"""What the photo uploaders take: the suffixes ``run`` and ``batch`` read (the content still decides)."""
UPLOAD_HELP = f"{READ_FORMAT_NAMES}; up to {MAX_UPLOAD_MB} MB each"


def _release_memory() -> None:
    from ..runtime import release_freed_memory

    release_freed_memory()


ENGINE_QUEUE = EngineQueue(on_idle=_release_memory)
"""Turns on the shared cartoonizers, first come, first served (see :mod:`.engine_queue`): sessions run in threads,
and OpenCV's face detector (compound mode) and one device's memory are not meant for concurrent calls. Each
photo (or Batch group) is one turn, so sessions interleave photo by photo. When no one has used it for two seconds,
the memory the finished work freed goes back to the operating system."""
STAGE_ORDER = ("decode", "preprocess", "network", "postprocess", "detect", "align", "head_network", "paste",
               "encode")


@dataclass(frozen=True)
class Settings:
    """What the sidebar chose: the model, the two objects that travel to the engine unchanged
    (:class:`CartoonConfig`: the picture; :class:`EngineOptions`: how to run it) and the time limit."""

    model: str = DEFAULT_MODEL
    config: CartoonConfig = CartoonConfig()
    engine_options: EngineOptions = EngineOptions()
    # Not part of what a result was made with: changing it never marks results as stale.
    time_limit_s: float = field(default=jobs.DEFAULT_TIME_LIMIT_S, compare=False)

    @classmethod
    def of(cls, **values) -> Settings:
        """Settings from flat names (``resolution=512, device="cpu"``), each routed to where it belongs."""
        return cls().changed(**values)

    def changed(self, **changes) -> Settings:
        """These settings with some changed by flat name (``model``, any CartoonConfig or EngineOptions field,
        ``time_limit_s``); a bad value raises ConfigError, an unknown name names the settings there are."""
        own = {k: v for k, v in changes.items() if k in ("model", "time_limit_s")}
        declared_changes = {k: v for k, v in changes.items() if k not in own}
        config, engine_options = declarations.apply_changes(declared_changes, self.config, self.engine_options)
        return replace(self, config=config, engine_options=engine_options, **own)

    def value(self, name: str):
        """A setting by flat name (see :meth:`changed`)."""
        for holder in (self.config, self.engine_options):
            if name in declarations.declared(holder):
                return getattr(holder, name)
        return getattr(self, name)

    def flat(self) -> dict:
        """Every setting by flat name, the model first: what a result was made with."""
        return {"model": self.model, **asdict(self.config), **asdict(self.engine_options)}


@dataclass
class Outcome:
    """One uploaded file after processing: either the pictures and ``data`` to download, or ``error``."""

    name: str
    error: str | None = None
    before: np.ndarray | None = None   # the resized photo, (H, W, 3) uint8
    after: np.ndarray | None = None    # the cartoon, (H, W, 3) uint8
    data: bytes = b""
    file_name: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    seconds: float = 0.0               # wall time of decode to encode, failures included


def model_choices() -> list[str]:
    names = [card.name for card in installed_models()]
    return names or [DEFAULT_MODEL]


def load_cartoonizer(model: str, engine_options: EngineOptions, head_model: str | None = None) -> Cartoonizer:
    """The warm model for these settings, created once per process (``st.cache_resource``).

    Whether int8 is prepared is part of the key: once the background warm-up (:mod:`.warm`) has compiled
    it, ``auto`` settings get a new, int8 engine instead of the one made before."""
    from ..options import int8_prepared

    int8_ready = int8_prepared() if engine_options.precision == "auto" else None
    return _cached_cartoonizer(model, engine_options, head_model, int8_ready)


def _make_cartoonizer(model: str, engine_options: EngineOptions, head_model: str | None,
                      int8_ready: bool | None = None) -> Cartoonizer:
    return Cartoonizer.from_pretrained(model, engine_options=engine_options, head_model=head_model,
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
    config = config or settings.config
    start = time.perf_counter()
    try:
        decoded = read_image(data, name=name, limits=cartoonizer.limits)
        decode_seconds = time.perf_counter() - start
        jobs.checkpoint()  # a stopped or timed-out job ends here, before the network, not after the photo
        result = cartoonizer.process(decoded, config)
        jobs.checkpoint()
        return _finish(name, decoded, result, decode_seconds, config, start)
    except CartoonkitError as exc:  # InvalidImageError, ConfigError, ... : message names the file / setting
        return Outcome(name=name, error=str(exc), seconds=time.perf_counter() - start)


def process_group(files: list[tuple[str, bytes]], settings: Settings, cartoonizer: Cartoonizer,
                  config: CartoonConfig | None = None) -> list[Outcome]:
    """Several files in shared engine calls (:meth:`Cartoonizer.process_many`, one call per bucket shape): the
    Batch page's photos per network call. Each file is decoded and encoded on its own, so a bad one is its own
    ``Outcome.error`` and the others go on; one file is :func:`process_one`."""
    config = config or settings.config
    if len(files) == 1:
        return [process_one(*files[0], settings, cartoonizer, config)]
    outcomes: list[Outcome | None] = [None] * len(files)
    decoded: dict[int, tuple] = {}  # index -> (image, decode seconds, start)
    for index, (name, data) in enumerate(files):
        start = time.perf_counter()
        try:
            decoded[index] = (read_image(data, name=name, limits=cartoonizer.limits), time.perf_counter() - start,
                              start)
        except CartoonkitError as exc:
            outcomes[index] = Outcome(name=name, error=str(exc), seconds=time.perf_counter() - start)
    try:
        jobs.checkpoint()
        results = cartoonizer.process_many([image for image, _, _ in decoded.values()], config,
                                           max_batch=len(files)) if decoded else []
        jobs.checkpoint()
        for (index, (image, decode_seconds, start)), result in zip(decoded.items(), results, strict=True):
            outcomes[index] = _finish(files[index][0], image, result, decode_seconds, config, start)
    except CartoonkitError:  # one photo's problem stopped the shared call: one at a time names it
        return [outcome or process_one(*files[index], settings, cartoonizer, config)
                for index, outcome in enumerate(outcomes)]
    return outcomes


def _finish(name: str, decoded, result: CartoonResult, decode_seconds: float, config: CartoonConfig,
            start: float) -> Outcome:
    """The outcome of a cartoonized photo: encoded, with the photo at the output's size beside it."""
    result.timings = {"decode": decode_seconds, **result.timings}
    encoded = result.encode(config.format, config.quality)
    # The photo at the output's size (not the network's input: that may be upscaled and blurred).
    before = resize_to(decoded.rgb, tuple(result.rgb.shape[-2:]))
    # Not the CartoonResult itself: its tensors would stay in the session beside the pictures made from them.
    return Outcome(name=name, before=to_numpy(before), after=to_numpy(result.rgb), data=encoded,
                   file_name=Path(name).stem + extension_for(config.format), timings=dict(result.timings),
                   notes=result.notes, seconds=time.perf_counter() - start)


def in_groups(items: list, size: int, process_group) -> Callable[[int], Any]:
    """A per-item function for :func:`run_job` over item indices that works ``size`` items at a time: the first
    index of a group runs ``process_group`` on the whole group (one hold of the model lock, shared engine calls),
    the others are answered from its results. The job's stop flag and time limit act between groups."""
    waiting: dict[int, Any] = {}

    def one(index: int):
        if index not in waiting:
            group = range(index, min(index + size, len(items)))
            waiting.update(zip(group, process_group([items[i] for i in group]), strict=True))
        return waiting.pop(index)
    return one


def process_uploads(files: list[tuple[str, bytes]], settings: Settings,
                    cartoonizer: Cartoonizer | None = None) -> list[Outcome]:
    """Process every ``(name, bytes)``; a bad file gives an error outcome and the others still run."""
    cartoonizer = cartoonizer or load_cartoonizer(settings.model, settings.engine_options)
    config = settings.config
    with ENGINE_QUEUE:
        return [process_one(name, data, settings, cartoonizer, config) for name, data in files]


def format_timings(timings: dict[str, float]) -> str:
    """``decode 12 ms · network 310 ms · ... · total 400 ms``, in pipeline order."""
    stages = [s for s in STAGE_ORDER if s in timings] + [s for s in timings if s not in STAGE_ORDER]
    parts = [f"{stage} {timings[stage] * 1000:.0f} ms" for stage in stages]
    parts.append(f"total {sum(timings.values()) * 1000:.0f} ms")
    return " · ".join(parts)


def settings_changes(old: Settings, new: Settings) -> list[str]:
    """``["resolution 1024 (now 512)", ...]``: what differs between the settings of a result and the current ones."""
    before, now = old.flat(), new.flat()
    return [f"{name.replace('_', ' ')} {before[name]} (now {now[name]})"
            for name in now if before.get(name) != now[name]]


def sample_files() -> list[tuple[str, bytes]]:
    from ..samples import sample_photos

    return [(path.name, path.read_bytes()) for path in sample_photos()]


def sidebar(st) -> Settings:
    """Draw the settings in the sidebar and return them: the model, then one widget per declared setting of
    :class:`CartoonConfig` and :class:`EngineOptions` (see :func:`draw_settings`), then the time limit."""
    sb = st.sidebar
    sb.header("Settings")
    model = sb.selectbox("Model", model_choices(), key="model")
    chosen: dict = {}
    sections: dict = {}
    config = CartoonConfig(**draw_settings(sb, CartoonConfig, chosen, sections, st.session_state))
    engine_options = EngineOptions(**draw_settings(sb, EngineOptions, chosen, sections, st.session_state))
    time_limit = sb.number_input("Time limit per request (s)", min_value=jobs.MIN_TIME_LIMIT_S,
                                 max_value=jobs.MAX_TIME_LIMIT_S,
                                 value=jobs.default_time_limit(), step=10.0, key="time_limit",
                                 help="Long work stops once it has used this much time, between files or between "
                                      "the steps of one; time spent waiting for other sessions' photos does not "
                                      f"count. Default from {jobs.TIME_LIMIT_ENV}")
    if warm_line := warm.status().line():
        sb.caption(warm_line)
    sb.caption(f"Uploads up to {MAX_UPLOAD_MB} MB per file (server.maxUploadSize in .streamlit/config.toml); "
               "images over 64 megapixels are refused.")
    return Settings(model=model, config=config, engine_options=engine_options, time_limit_s=float(time_limit))


SETTINGS_KEY = "sidebar_settings"


def remember_settings(st, settings: Settings) -> None:
    """Keep this run's sidebar settings for the page that runs next (a page is its own script file)."""
    st.session_state[SETTINGS_KEY] = settings


def current_settings(st) -> Settings:
    """The sidebar settings of this run (the defaults when a page runs without the app around it)."""
    return st.session_state.get(SETTINGS_KEY) or Settings()


def draw_settings(where, cls, chosen: dict, sections: dict | None = None, state=None, *,
                  only: tuple[str, ...] | None = None, key_prefix: str = "") -> dict:
    """One widget per declared setting of ``cls`` that has a :class:`~cartoonkit.settings.Widget` (those in
    ``only``, if given), keyed by ``key_prefix`` and the setting's name, in declaration order; returns
    ``{name: value}`` (and adds them to ``chosen``, which ``enabled_when`` predicates read). Settings without a
    widget keep their defaults. ``where`` may be the sidebar or a column of the page.

    ``state``: the session state; a widget whose value is already there (from an earlier run, or seeded from a
    shared link by :mod:`.share`) is drawn without a default, so Streamlit takes the state's value."""
    sections = {} if sections is None else sections
    values = {}
    for name, (spec, default) in declarations.declared(cls).items():
        widget = spec.widget
        if widget is None or (only is not None and name not in only):
            continue
        if widget.section is None:
            place = where
        else:
            place = sections.get(widget.section) or sections.setdefault(widget.section, where.expander(widget.section))
        options = widget.options() if callable(widget.options) else (widget.options or spec.choices)
        disabled = widget.enabled_when is not None and not widget.enabled_when(chosen)
        key = key_prefix + name
        common = dict(key=key, help=spec.help, disabled=disabled)
        if widget.format is not None and widget.kind != "slider":
            common["format_func"] = widget.format
        seeded = state is not None and key in state
        start = default if widget.value is None else widget.value
        if widget.kind == "slider":
            value = place.slider(widget.label, spec.kind(spec.low), spec.kind(spec.high),
                                 **({} if seeded else {"value": start}), step=spec.kind(widget.step), **common)
        elif widget.kind == "select":
            index = {} if seeded else {"index": list(options).index(start)}
            value = place.selectbox(widget.label, options, **index, **common)
        elif widget.kind == "radio":
            value = place.radio(widget.label, options, **({} if seeded else {"index": list(options).index(start)}),
                                horizontal=True, **common)
        elif widget.kind == "select_slider":
            value = place.select_slider(widget.label, options, **({} if seeded else {"value": start}), **common)
        elif widget.kind == "checkbox":
            value = place.checkbox(widget.label, **({} if seeded else {"value": start}), **common)
        else:
            raise ValueError(f"{name}: unknown widget kind {widget.kind!r}")
        if value is None:
            pass  # an optional setting's "auto"
        elif spec.kind is float:
            value = round(float(value), 2)  # slider steps drift (1.2000000000000002)
        elif spec.kind is int:
            value = int(value)
        values[name] = chosen[name] = value
    return values


# --------------------------------------------------------------------------- long work on a page


def run_buttons(st, label: str, run_key: str, stop_key: str) -> tuple[bool, bool]:
    """The page's primary button and its Stop button side by side; returns (run clicked, stop clicked)."""
    left, right, _ = st.columns([1, 2, 3])
    run = left.button(label, key=run_key, type="primary")
    stop = right.button("Stop and keep results", key=stop_key,
                        help="Stops at the next step of the item being processed (the network's own pass "
                             "finishes first); what is done so far stays on the page")
    return run, stop


def photo_request(st, job_key: str, run_label: str, key_prefix: str = "",
                  help: str = UPLOAD_HELP, camera: bool = False) -> list[tuple[str, bytes]] | None:
    """The uploader, the sample-portraits box (and, with ``camera``, a camera snapshot) and the run/Stop buttons
    of a page that cartoonizes photos.

    Settles the job of an earlier run this click replaced; returns the ``(name, bytes)`` to cartoonize when
    the run button was clicked with something to do, else ``None`` (with a warning when there was nothing)."""
    uploads = st.file_uploader("Photos", type=UPLOAD_TYPES, accept_multiple_files=True, key=f"{key_prefix}uploads",
                               help=help)
    use_samples = st.checkbox("Use sample portraits", key=f"{key_prefix}use_samples")
    snapshot = None
    # Behind a toggle: the browser asks for the camera as soon as the widget is drawn.
    if camera and st.toggle("Use the camera", key=f"{key_prefix}use_camera"):
        snapshot = st.camera_input("Take a photo", key=f"{key_prefix}camera",
                                   help="The snapshot is cartoonized like an upload (with the others, if any)")
    run, stop = run_buttons(st, run_label, f"{key_prefix}run", f"{key_prefix}stop")
    settle(st, job_key, stop)
    if not run:
        return None
    files = [(f.name, f.getvalue()) for f in uploads or []] + (sample_files() if use_samples else [])
    if snapshot is not None:
        files.append((f"camera-{time.strftime('%H%M%S')}.jpg", snapshot.getvalue()))
    if not files:
        st.warning("Upload photos, take one with the camera or tick 'Use sample portraits' first.")
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
    """Run ``fn`` over ``items`` one at a time, each in a turn of the shared engine (:data:`ENGINE_QUEUE`), with a
    progress bar, the Stop button's flag and the sidebar's time limit (which does not count the turns' waits); the
    job (results so far included) lives in ``st.session_state[job_key]``. While an item waits for its turn, the
    line above the bar says its place in the queue and an estimate. ``on_result(result, index)``, if given, draws
    each result as it comes; the bar goes into ``area`` if given."""
    where = area if area is not None else st
    queue_line, bar = where.empty(), where.progress(0.0, text=f"0 of {len(items)} {unit}")
    # No Streamlit call from here to run_with_limit: a rerun could stop this run there and leave a job
    # that never sets ``finished`` for the next run to wait on.
    job = jobs.Job(total=len(items), settings=settings, limit_s=settings.time_limit_s, labels=list(labels),
                   meta=meta)
    st.session_state[job_key] = job
    shown = {"text": ""}

    def waiting(place) -> None:  # a Streamlit call: where a rerun may stop this run (the ticket leaves the queue)
        if job.cancel.is_set():
            raise jobs.ItemAbandoned("stopped")
        text = place.describe(remaining=job.total - job.done, unit=unit)
        if text != shown["text"]:
            queue_line.info(text)
            shown["text"] = text

    def in_turn(item):
        # One turn per item, so that other sessions' requests interleave with a long batch.
        with ENGINE_QUEUE.turn(owner=job, on_wait=waiting) as waited_s:
            job.deadline.waited_s += waited_s   # the limit counts this request's work, not its wait
            return fn(item)

    def progress(job: jobs.Job, item) -> None:  # a Streamlit call: where a rerun may stop this one
        if shown["text"]:
            queue_line.empty()
            shown["text"] = ""
        bar.progress(job.done / job.total, text=f"{job.done} of {job.total} {unit}: {job.labels[job.done - 1]}")
        if on_result is not None:
            on_result(job.results[-1], job.done - 1)

    jobs.run_with_limit(job, items, in_turn, on_progress=progress)
    queue_line.empty()
    bar.empty()
    return job


def show_job_state(st, job: jobs.Job, settings: Settings, action: str, unit: str = "files") -> None:
    """Why the job ended early (if it did), how long it took when it shared the engine with other sessions, and
    whether its results were made with other settings."""
    if job.state == "time_limit" or job.state == "failed":
        st.error(job.message(unit))
    elif job.state in ("stopped", "interrupted"):
        st.warning(job.message(unit))
    elif job.state == "done" and job.waited_s >= 1:
        st.caption(f"{job.done} {unit} in {job.elapsed_s:.0f} s: {job.used_s:.0f} s of work (what the time limit "
                   f"counts) and {job.waited_s:.0f} s in the queue behind other sessions' photos.")
    changes = settings_changes(job.settings, settings) if job.settings is not None else []
    if changes:
        st.warning(f"These results were made with other settings: {'; '.join(changes)}. "
                   f"Press {action} to update.")
