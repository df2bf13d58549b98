"""Video page: a short clip in (an upload or the sample clip), a few frames before/after, progress with Stop, the
cartoon clip played in the page and downloadable, with its frames per second and warping error (flicker).

The clip is cartoonized by :func:`cartoonkit.video.cartoonize_video`, the API and ``cartoonkit video`` path; the
page only adds the upload, the preview and the display.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .. import paths
from ..run_options import VideoOptions
from . import common, jobs

JOB_KEY = "video_job"
MAX_VIDEO_MB = common.MAX_UPLOAD_MB  # the server's upload limit (.streamlit/config.toml) holds for clips too
MAX_SECONDS = 30.0  # of clip per request: at a few frames a second on a CPU, longer belongs to the command line
UPLOAD_TYPES = ["mp4", "m4v", "mov", "mkv", "webm", "avi"]
PREVIEWS = 3


@dataclass
class VideoOutcome:
    """A finished clip: the MP4's bytes, its summary, and a few (index, before, after) frames."""

    name: str
    data: bytes
    summary: object
    previews: list[tuple[int, np.ndarray, np.ndarray]] = field(default_factory=list)


def sample_clip() -> Path | None:
    """../shared/videos/dct_input.mp4 where the checkout has it (see its SOURCES.md)."""
    path = paths.shared_dir() / "videos" / "dct_input.mp4"
    return path if path.is_file() else None


def preview_indices(total: int | None, count: int = PREVIEWS) -> set[int]:
    """Frames to show before/after: spread over the clip (the first ones when its length is unknown)."""
    if not total:
        return set(range(count))
    return {round(i * (total - 1) / max(count - 1, 1)) for i in range(count)}


def cartoonize_clip(name: str, data: bytes | None, source: Path | None, settings: common.Settings,
                    options: VideoOptions, progress=None, should_stop=None, waited=None) -> VideoOutcome | None:
    """Cartoonize one clip (``data`` uploaded, or the file ``source``) into MP4 bytes with the run ``options``
    (their section and limits are the page's: at most :data:`MAX_SECONDS`); None when stopped.
    No Streamlit in here: the page passes its progress bar in as ``progress(done, total)``. The clip is one turn of
    the shared engine; ``waited(seconds)`` is told how long it waited for it (the time limit does not count that)."""
    from ..video import cartoonize_video, expected_frames, open_input, probe

    folder = tempfile.mkdtemp(prefix="cartoonkit-video-")
    try:
        if source is None:
            # Named as uploaded, so that an error about the clip names the user's file.
            source = Path(folder) / "in" / (Path(name).name or "clip.mp4")
            source.parent.mkdir()
            source.write_bytes(data)
        options = replace(options, max_seconds=min(options.max_seconds, MAX_SECONDS))
        with open_input(source) as container:
            total = expected_frames(probe(container, name, options.limits), options.start, options.end)
        wanted = preview_indices(total)
        previews: list[tuple[int, np.ndarray, np.ndarray]] = []

        def keep(index: int, photo: np.ndarray, frame_by_frame: np.ndarray, written: np.ndarray) -> None:
            if index in wanted:  # the writer thread: only a list append here
                previews.append((index, _at_size(photo, written.shape), written.copy()))

        cartoonizer = common.load_cartoonizer(settings.model, settings.engine_options)
        out = Path(folder) / (Path(name).stem + "-cartoon.mp4")
        with common.ENGINE_QUEUE.turn() as waited_s:
            if waited is not None:
                waited(waited_s)
            summary = cartoonize_video(source, out, settings.config, settings.engine_options, options,
                                       cartoonizer=cartoonizer, progress=progress, should_stop=should_stop,
                                       on_frame=keep)
        if summary.stopped:
            return None
        summary.src = name  # not the temporary copy's path
        return VideoOutcome(name=out.name, data=out.read_bytes(), summary=summary, previews=sorted(previews,
                            key=lambda p: p[0]))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _at_size(photo: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    import cv2

    return cv2.resize(photo, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)


def render(st, settings: common.Settings) -> None:
    st.title("Video")
    st.caption(f"A short clip, up to {MAX_VIDEO_MB} MB and {MAX_SECONDS:g} s processed, becomes an MP4 cartoon with "
               "its sound. The resolution, style and engine come from the sidebar; for long clips use "
               "`cartoonkit video IN -o OUT.mp4`.")
    upload = st.file_uploader("Clip", type=UPLOAD_TYPES, key="video_upload",
                              help=f"A video file up to {MAX_VIDEO_MB} MB ({', '.join(UPLOAD_TYPES)})")
    sample = sample_clip()
    use_sample = sample is not None and st.checkbox(f"Use the sample clip ({sample.name})", key="video_use_sample")
    left, middle, right = st.columns(3)
    chosen: dict = {}  # the clip's options, from their declarations (VideoOptions); the section is the page's
    common.draw_settings(left, VideoOptions, chosen, state=st.session_state, only=("temporal",), key_prefix="video_")
    seconds = middle.number_input("Seconds to process", 0.2, MAX_SECONDS, 5.0, 0.2, key="video_seconds",
                                  help="from the start of the clip")
    common.draw_settings(right, VideoOptions, chosen, state=st.session_state, only=("measure",), key_prefix="video_")
    options = VideoOptions(**chosen, end=float(seconds))
    run, stop = common.run_buttons(st, "Cartoonize clip", "video_run", "video_stop")
    common.settle(st, JOB_KEY, stop)
    if run:
        if upload is None and not use_sample:
            st.warning("Upload a clip or tick 'Use the sample clip' first.")
            st.session_state.pop(JOB_KEY, None)
        else:
            _run(st, upload, sample if upload is None else None, settings, options)
    job = st.session_state.get(JOB_KEY)
    if job is None:
        return
    if job.state == "failed":
        st.error(job.error)
    elif job.state in ("stopped", "interrupted", "time_limit"):
        why = {"stopped": "Stopped by you", "interrupted": "Interrupted by a change on the page",
               "time_limit": f"Stopped at the time limit ({job.limit_s:g} s, set in the sidebar)"}[job.state]
        st.warning(f"{why}: no clip was written (a video is only kept when complete).")
    for outcome in job.results:
        show_outcome(st, outcome)


def _run(st, upload, sample: Path | None, settings: common.Settings, options: VideoOptions) -> None:
    name = upload.name if upload is not None else sample.name
    bar = st.progress(0.0, text=f"{name}: starting")
    job = jobs.Job(total=1, settings=settings, limit_s=settings.time_limit_s, labels=[name])
    st.session_state[JOB_KEY] = job
    deadline = jobs.Deadline(job.limit_s)

    def progress(done: int, total: int | None) -> None:  # a Streamlit call: where a rerun may stop this run
        share = min(done / total, 1.0) if total else 0.0
        bar.progress(share, text=f"{name}: {done} of {total or '?'} frames")

    def add_wait(seconds: float) -> None:
        deadline.waited_s += seconds

    def should_stop() -> bool:
        if job.cancel.is_set():
            job.state = "stopped"
            return True
        if deadline.passed():
            job.state = "time_limit"
            return True
        return False

    try:
        outcome = cartoonize_clip(name, upload.getvalue() if upload is not None else None, sample, settings,
                                  options, progress, should_stop, waited=add_wait)
        if outcome is not None:
            job.results.append(outcome)
            job.state = "done"
    except Exception as exc:  # a bad clip or a missing model: say so, keep the page alive
        job.state, job.error = "failed", str(exc) or type(exc).__name__
    finally:
        job.elapsed_s = deadline.elapsed()
        job.finished.set()
    bar.empty()


def show_outcome(st, outcome: VideoOutcome) -> None:
    summary = outcome.summary
    st.subheader(outcome.name)
    columns = st.columns(3)
    columns[0].metric("Frames per second", f"{summary.fps:.2f}", help="end to end: decode, network, encode")
    columns[1].metric("Frames", f"{summary.frames}", help=f"{summary.width}x{summary.height}")
    if summary.flicker is not None:
        flicker = summary.flicker
        columns[2].metric("Warping error (flicker)", f"{flicker.output_mean:.4f}",
                          delta=f"{flicker.output_mean - flicker.frame_by_frame_mean:+.4f} vs frame by frame",
                          delta_color="inverse", help="Lai et al. (ECCV 2018); lower is steadier")
        st.caption(flicker.describe())
    st.video(outcome.data, format="video/mp4")
    st.download_button(f"Download {outcome.name}", outcome.data, file_name=outcome.name, mime="video/mp4",
                       key="video_download")
    for index, before, after in outcome.previews:
        left, right = st.columns(2)
        left.image(before, caption=f"frame {index}, before")
        right.image(after, caption=f"frame {index}, after")
    st.caption(summary.describe().splitlines()[1])
    for note in summary.notes:
        st.info(note)
