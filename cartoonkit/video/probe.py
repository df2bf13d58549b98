"""What a clip is before any frame is decoded: its streams, size, rate, rotation and length, checked against
:class:`VideoLimits`; and the one place the optional PyAV dependency is imported.

Every problem with an input comes out as :class:`InvalidVideoError` whose message starts with the file's name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from types import ModuleType

from ..errors import CartoonkitError, reason_of

VIDEO_EXTRA = "video"

# A 4K DCI frame, ten minutes, and ten minutes at 60 fps: generous for a cartoonizer that runs at a few frames a
# second on a CPU, small enough that a hostile header cannot make a run allocate or promise without bound.
DEFAULT_MAX_PIXELS = 4096 * 2160
DEFAULT_MAX_SECONDS = 600.0
DEFAULT_MAX_FRAMES = 36_000


class InvalidVideoError(CartoonkitError):
    """An input cannot be used as a video (not a video, no video stream, damaged, truncated, over a limit)."""


@dataclass(frozen=True)
class VideoLimits:
    """Refuse clips beyond these, before decoding (from the header) and again while decoding (what is really
    there): pixels per frame, seconds and frames of the section being processed."""

    max_pixels: int = DEFAULT_MAX_PIXELS
    max_seconds: float = DEFAULT_MAX_SECONDS
    max_frames: int = DEFAULT_MAX_FRAMES


def require_av() -> ModuleType:
    """PyAV, or an error saying which extra installs it."""
    from ..extras import require

    return require("av", "cartoonkit video", VIDEO_EXTRA)


@dataclass(frozen=True)
class VideoInfo:
    """The facts about a clip a run needs, from its header; sizes as stored (the decoder turns frames that carry
    a display rotation)."""

    path: str
    width: int
    height: int
    fps: Fraction               # average rate; the time stamps are what the output keeps
    time_base: Fraction
    duration: float | None      # seconds, from the header (None if it does not say)
    frames: int | None          # from the header (None if it does not say)
    codec: str
    audio: str | None           # codec of the first audio stream, None when there is none
    dropped: tuple[str, ...]    # the other streams, which the output leaves out ("subtitle (mov_text)", ...)

    def describe(self) -> str:
        length = f"{self.duration:.2f} s" if self.duration is not None else "unknown length"
        frames = f"{self.frames} frames" if self.frames else "frame count unknown"
        audio = f", audio {self.audio}" if self.audio else ", no audio"
        return (f"{self.width}x{self.height} {self.codec}, {float(self.fps):.3g} fps, {length}, "
                f"{frames}{audio}")


def open_input(path: str | os.PathLike):
    """Open ``path`` for demuxing, turning every reason it cannot be into one :class:`InvalidVideoError`."""
    av = require_av()
    path = os.fspath(path)
    if not os.path.exists(path):
        raise InvalidVideoError(f"{path}: no such file")
    if os.path.isdir(path):
        raise InvalidVideoError(f"{path}: is a folder, not a video file")
    try:
        return av.open(path, "r")
    except av.FFmpegError as exc:
        raise InvalidVideoError(f"{path}: not a video, or damaged or truncated ({reason_of(exc)})") from exc


def probe(container, path: str, limits: VideoLimits = VideoLimits()) -> VideoInfo:
    """The clip's :class:`VideoInfo` from an open container, refused if it breaks ``limits``."""
    if not container.streams.video:
        kinds = ", ".join(sorted({s.type for s in container.streams})) or "no streams at all"
        raise InvalidVideoError(f"{path}: no video stream (it holds {kinds})")
    stream = container.streams.video[0]
    context = stream.codec_context
    width, height = context.width, context.height
    if not width or not height:
        raise InvalidVideoError(f"{path}: the video stream has no frame size (damaged header)")
    if width * height > limits.max_pixels:
        raise InvalidVideoError(f"{path}: {width}x{height} is {width * height} pixels per frame, over the limit "
                                f"of {limits.max_pixels}")
    fps = stream.average_rate or stream.guessed_rate or stream.base_rate
    if not fps or fps <= 0:
        raise InvalidVideoError(f"{path}: the video stream has no frame rate (damaged header)")
    duration = None
    if stream.duration is not None and stream.time_base:
        duration = float(stream.duration * stream.time_base)
    elif container.duration:
        duration = container.duration / 1_000_000
    frames = stream.frames or None
    audio = container.streams.audio[0].codec_context.name if container.streams.audio else None
    dropped = tuple(f"{s.type} #{s.index} ({s.codec_context.name if s.codec_context else 'unknown'})"
                    for s in container.streams
                    if s is not stream and not (container.streams.audio and s is container.streams.audio[0]))
    return VideoInfo(path=path, width=width, height=height, fps=Fraction(fps),
                     time_base=Fraction(stream.time_base), duration=duration, frames=frames, codec=context.name,
                     audio=audio, dropped=dropped)


def check_section(info: VideoInfo, start: float, end: float | None, limits: VideoLimits) -> None:
    """Refuse, from the header, a section (``start`` to ``end`` seconds) longer than the limits allow."""
    if start < 0 or (end is not None and end <= start):
        raise InvalidVideoError(f"{info.path}: --start {start} / --end {end}: need 0 <= start < end")
    if info.duration is not None and start >= info.duration:
        raise InvalidVideoError(f"{info.path}: --start {start} s is past the end of the clip ({info.duration:.2f} s)")
    stop = min(x for x in (end, info.duration) if x is not None) if (end or info.duration) else None
    if stop is not None:
        seconds = stop - start
        if seconds > limits.max_seconds:
            raise InvalidVideoError(f"{info.path}: {seconds:.1f} s to process, over the limit of "
                                    f"{limits.max_seconds:g} s (cut a section with --start/--end)")
        estimated = int(seconds * float(info.fps))
        if estimated > limits.max_frames:
            raise InvalidVideoError(f"{info.path}: about {estimated} frames to process, over the limit of "
                                    f"{limits.max_frames} (cut a section with --start/--end)")


def expected_frames(info, start: float, end: float | None) -> int | None:
    """How many frames the section holds, from the header (for a progress bar; the decoder counts the truth)."""
    if start == 0 and end is None and info.frames:
        return info.frames
    stop = end if end is not None else info.duration
    if stop is None:
        return None
    if info.duration is not None:
        stop = min(stop, info.duration)
    return max(1, round((stop - start) * float(info.fps)))
