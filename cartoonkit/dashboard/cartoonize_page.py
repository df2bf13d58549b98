"""Cartoonize page: upload photos (or use the sample portraits), see before/after, download, stage times."""

from __future__ import annotations

import numpy as np

from ..run_options import batch_size_for
from . import before_after, common, gallery

JOB_KEY = "cartoonize_job"


def start(st, job_key: str, files: list[tuple[str, bytes]], settings: common.Settings, keep_images: bool = True,
          on_result=None, area=None, page: str = "Cartoonize", batch_size: int | None = 1) -> bool:
    """Cartoonize ``files`` as a job under ``job_key`` (shared with the Batch page); bad settings stop it early.
    ``on_result(outcome, index)`` draws each photo as it is done, under the progress bar in ``area``; each result
    also goes into the session gallery, marked as made on ``page``. ``batch_size``: photos per network call (the
    Batch page's, ``None`` for the device's default; they are then done, stopped and timed in groups). False when
    nothing ran."""
    try:
        config = settings.config
        cartoonizer = common.load_cartoonizer(settings.model, settings.engine_options)
    except Exception as exc:  # a missing model or device: say so, keep the page alive
        st.error(str(exc))
        st.session_state.pop(job_key, None)
        return False

    def group(chosen: list[tuple[str, bytes]]) -> list[common.Outcome]:
        outcomes = common.process_group(chosen, settings, cartoonizer, config)
        if not keep_images:  # the Batch page keeps only the encoded files: less memory per session
            for outcome in outcomes:
                outcome.before = outcome.after = None
        return outcomes

    def done(outcome: common.Outcome, index: int) -> None:
        gallery.add(st.session_state, outcome, settings, page)
        if on_result is not None:
            on_result(outcome, index)

    size = batch_size_for(batch_size, cartoonizer.device.type)
    common.run_job(st, job_key, list(range(len(files))), [name for name, _ in files],
                   common.in_groups(files, size, group), settings, unit="photos", on_result=done, area=area)
    return True


INTRO = ("cartoonkit turns photos of people into cartoons with the White-box Cartoonization / DCT-Net network, "
         "exactly as the original model computes them, and fast on this machine.")
LANDING_RESOLUTION = 512   # the first impression must come quickly on a laptop CPU (about a second)


def landing_example() -> tuple[np.ndarray, np.ndarray] | None:
    """(photo, cartoon) of the first sample portrait at :data:`LANDING_RESOLUTION`, made once per server process
    (``st.cache_resource``) with the default model; None when it cannot be made here (no model installed...)."""
    return _cached_landing_example()


def _make_landing_example() -> tuple[np.ndarray, np.ndarray] | None:
    from ..samples import sample_photos

    try:
        photo = sample_photos()[0]
        name, data = photo.name, photo.read_bytes()
        settings = common.Settings.of(resolution=LANDING_RESOLUTION)
        cartoonizer = common.load_cartoonizer(settings.model, settings.engine_options)
        with common.ENGINE_QUEUE:   # a turn like any photo's: sessions may be cartoonizing already
            outcome = common.process_one(name, data, settings, cartoonizer)
    except Exception:  # noqa: BLE001 (the landing page must render without it)
        return None
    return None if outcome.error else (outcome.before, outcome.after)


try:
    import streamlit as _st

    _cached_landing_example = _st.cache_resource(show_spinner="Cartoonizing a sample portrait...")(
        _make_landing_example)
except ImportError:  # pragma: no cover
    _cached_landing_example = _make_landing_example


def show_landing(st) -> None:
    """What the tool does, at once: one sentence, a before/after of a sample portrait, the three ways in."""
    st.markdown(INTRO)
    example = landing_example()
    if example is not None:
        before_after.show(st, *example, width=560, label_before="sample photo", label_after="cartoon")
    st.markdown("**Try it:** upload photos below, take one with your camera (*Use the camera*), or tick "
                "*Use sample portraits*; then press **Cartoonize**.")


def render(st, settings: common.Settings) -> None:
    st.title("Cartoonize")
    if st.session_state.get(JOB_KEY) is None:
        show_landing(st)
    files = common.photo_request(st, JOB_KEY, "Cartoonize", camera=True)
    # Messages, then the progress bar, then the photos, which appear one by one.
    status, bar, results = st.container(), st.container(), st.container()
    drawn = files is not None and start(st, JOB_KEY, files, settings, area=bar,
                                        on_result=lambda outcome, index: show_outcome(results, outcome, index))
    job = st.session_state.get(JOB_KEY)
    if job is not None:
        common.show_job_state(status, job, settings, "Cartoonize", unit="photos")
        for index, outcome in enumerate([] if drawn else job.results):
            show_outcome(results, outcome, index)


def show_outcome(st, outcome: common.Outcome, index: int) -> None:
    st.subheader(outcome.name)
    if outcome.error:
        st.error(outcome.error)
        return
    height, width = outcome.after.shape[:2]
    before_after.show(st, outcome.before, outcome.after, label_after=f"after ({width}x{height})")
    with st.expander("Side by side"):
        before, after = st.columns(2)
        before.image(outcome.before, caption="before")
        after.image(outcome.after, caption=f"after ({width}x{height})")
    st.download_button(f"Download {outcome.file_name}", outcome.data, file_name=outcome.file_name,
                       mime=_MIME.get(outcome.file_name.rsplit(".", 1)[-1], "application/octet-stream"),
                       key=f"download_{index}")
    st.caption(common.format_timings(outcome.timings))
    for note in outcome.notes:
        st.info(note)


_MIME = {"png": "image/png", "jpg": "image/jpeg", "webp": "image/webp"}
