"""The options of a run: :class:`FolderOptions` (``cartoonkit batch``, :func:`~cartoonkit.folder.run_folder`) and
:class:`VideoOptions` (``cartoonkit video``, :func:`~cartoonkit.video.cartoonize_video`).

They are the third object that travels, beside :class:`~cartoonkit.config.CartoonConfig` (what the picture
should be) and :class:`~cartoonkit.options.EngineOptions` (how the network runs): how much work is done at a time,
where, which part of the input, and where the results go. Each field is declared once with
:func:`~cartoonkit.settings.setting`, so the command line's flags, the dashboard's widgets, the API's keyword
arguments and the resume fingerprint come from here. Torch-free, like the other two, so the command line builds
its flags from them before importing torch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from .errors import ConfigError
from .formats import DEFAULT_MAX_FILE_BYTES, DEFAULT_MAX_PIXELS, ImageLimits
from .settings import Widget, setting, validate
from .video.probe import DEFAULT_MAX_FRAMES, DEFAULT_MAX_SECONDS, VideoLimits
from .video.probe import DEFAULT_MAX_PIXELS as VIDEO_MAX_PIXELS

DEFAULT_BATCH_SIZE: dict[str, int] = {"cuda": 8, "cpu": 1}
"""Photos (or frames) per engine call when no batch size is given, by device type: on the CPU the cores are
already busy with one image (BENCHMARKS.md measures the batch effect); a GPU needs several to be kept busy."""
BATCH_SIZE_HELP = f"(default {DEFAULT_BATCH_SIZE['cuda']} on CUDA, {DEFAULT_BATCH_SIZE['cpu']} on the CPU)"
MAX_BATCH_SIZE = 4096
MAX_PROCESSES = 64
MAX_IO_THREADS = 64
MAX_ACTORS = 1024
BACKENDS = ("local", "ray")


def run_setting(default, kind: type, help: str, **options):
    """A run option: declared like every setting, but outside the resume fingerprint, because none of these
    changes an output's bytes (a photo's result does not depend on its batch, its process or where it ran).
    An option that does change them is declared with :func:`~cartoonkit.settings.setting` instead, and the
    fingerprint then holds it."""
    return setting(default, kind, help, fingerprint=False, **options)


def batch_size_for(batch_size: int | None, device_type: str) -> int:
    """The batch size a run uses: the one given, else :data:`DEFAULT_BATCH_SIZE` for the device type."""
    return batch_size or DEFAULT_BATCH_SIZE.get(device_type, 1)


def _device_list(devices) -> tuple[str, ...] | None:
    """``"cuda:0, cuda:1"`` or a list -> ``("cuda:0", "cuda:1")``; empty -> ``None``."""
    if devices is None:
        return None
    parts = devices.split(",") if isinstance(devices, str) else list(devices)
    names = tuple(str(d).strip() for d in parts if str(d).strip())
    return names or None


def _text(name: str):
    """A check for a non-empty text (a path may come as ``os.PathLike``)."""
    def check(value):
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{name}={value!r}: must be a non-empty text")
        return value
    return check


@dataclass(frozen=True)
class FolderOptions:
    """How a folder run is carried out; see each field's help (``cartoonkit batch --help`` prints them)."""

    batch_size: int | None = run_setting(
        None, int, f"photos per network call {BATCH_SIZE_HELP}; photos of different sizes are padded to shared "
                   "bucket shapes, which never shows in the output", low=1, high=MAX_BATCH_SIZE,
        widget=Widget("select", "Photos per network call", options=(None, 1, 2, 4, 8, 16),
                      format=lambda size: f"auto {BATCH_SIZE_HELP}" if size is None else str(size)))
    workers: int = run_setting(
        1, int, "CPU processes, each with its own model, sharing the CPU threads; more than one runs as Ray actors "
                "on this machine (needs pip install 'cartoonkit[ray]')", low=1, high=MAX_PROCESSES)
    devices: tuple[str, ...] | None = run_setting(
        None, str, "comma-separated devices, one process each, e.g. cuda:0,cuda:1 (instead of --device); the "
                   "processes are Ray actors on this machine (needs pip install 'cartoonkit[ray]')",
        normalise=_device_list, metavar="DEVICES")
    io_threads: int | None = run_setting(
        None, int, "reader and writer threads per process (default: up to 4)", low=1, high=MAX_IO_THREADS)
    resume: bool = run_setting(
        False, bool, "finish the batch recorded in OUT after an interruption (same settings required)")
    overwrite: bool = run_setting(False, bool, "replace existing outputs (default: keep them, skip)")
    report: str | None = run_setting(
        None, str, "write the JSON report here (default OUT/cartoonkit-report.json)", normalise=_text("report"),
        metavar="PATH")
    backend: str = run_setting(
        "local", str, "where the files are cartoonized. local: this process (--workers/--devices: Ray actors on this "
                      "machine); ray: a pool of Ray actors, on this machine or a cluster (needs pip install "
                      "'cartoonkit[ray]'; see docs/scaling.md)", choices=BACKENDS)
    address: str | None = run_setting(
        None, str, "--backend ray: join this running Ray cluster (default: start one on this machine for the run)",
        normalise=_text("address"), metavar="auto|HOST:PORT")
    actors: int | None = run_setting(
        None, int, "--backend ray: actors, one model each (default: one per GPU, or one per node on CPUs)",
        low=1, high=MAX_ACTORS)
    gpus_per_actor: float | None = run_setting(
        None, float, "--backend ray: GPUs each actor takes (default 1 with a CUDA device, else 0: CPU actors)",
        low=0.0, high=8.0)
    max_pixels: int = run_setting(
        DEFAULT_MAX_PIXELS, int, "refuse inputs with more pixels than this, checked before decoding", low=1)
    max_file_bytes: int = run_setting(DEFAULT_MAX_FILE_BYTES, int, "refuse input files larger than this", low=1,
                                      cli=False)

    def __post_init__(self) -> None:
        validate(self)
        ray_only = [name for name in ("address", "actors", "gpus_per_actor") if getattr(self, name) is not None]
        if self.backend != "ray" and ray_only:
            raise ConfigError(f"{', '.join(ray_only)} (--{', --'.join(n.replace('_', '-') for n in ray_only)}) "
                              "need backend='ray' (--backend ray)")
        if self.backend == "ray" and (self.devices or self.workers != 1):
            raise ConfigError("backend='ray': Ray places the actors; give actors (and gpus_per_actor) instead of "
                              "devices or workers")
        if self.devices and self.workers != 1:
            raise ConfigError(f"workers={self.workers}: give either --devices (one process per device) or --workers")

    @property
    def limits(self) -> ImageLimits:
        """What the readers refuse before decoding."""
        return ImageLimits(max_pixels=self.max_pixels, max_file_bytes=self.max_file_bytes)


@dataclass(frozen=True)
class VideoOptions:
    """How a clip is cartoonized; see each field's help (``cartoonkit video --help`` prints them)."""

    temporal: float = run_setting(
        0.8, float, "temporal smoothing strength 0-1; 0 = frame by frame", low=0.0, high=1.0,
        widget=Widget("slider", "Temporal smoothing", step=0.05))
    start: float = run_setting(0.0, float, "start of the section to cut, seconds", low=0.0)
    end: float | None = run_setting(None, float, "end of the section, seconds (default: the end)", low=0.0)
    codec: str = run_setting(
        "libx264", str, "video encoder: libx264, libx265, libvpx-vp9 (.mkv), mpeg4, ...", normalise=_text("codec"))
    crf: int = run_setting(18, int, "quality for x264/x265/vp9, lower is better", low=0, high=63)
    audio: bool = run_setting(True, bool, "leave the audio out (by default the first audio stream is carried over)")
    measure: bool = run_setting(
        False, bool, "also report the warping error (flicker) of input, frame-by-frame and written frames",
        widget=Widget("checkbox", "Measure flicker (warping error)", value=True))
    batch_size: int | None = run_setting(
        None, int, f"frames per network call {BATCH_SIZE_HELP}", low=1, high=MAX_BATCH_SIZE)
    max_pixels: int = run_setting(VIDEO_MAX_PIXELS, int, "refuse frames with more pixels than this", low=1)
    max_seconds: float = run_setting(DEFAULT_MAX_SECONDS, float, "refuse sections longer than this, seconds",
                                     low=0.0)
    max_frames: int = run_setting(DEFAULT_MAX_FRAMES, int, "refuse sections with more frames than this", low=1)

    def __post_init__(self) -> None:
        validate(self)
        if self.end is not None and self.end <= self.start:
            raise ConfigError(f"start={self.start:g}, end={self.end:g}: the section must end after it starts")

    @property
    def limits(self) -> VideoLimits:
        """What the probe and the decoder refuse."""
        return VideoLimits(max_pixels=self.max_pixels, max_seconds=self.max_seconds, max_frames=self.max_frames)
