"""Demux and decode the video stream of a clip into RGB frames with their time stamps, the display rotation
applied, a section cut out, and the limits and the stream's integrity checked as frames arrive."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from .probe import InvalidVideoError, VideoInfo, VideoLimits, require_av


@dataclass
class Frame:
    """One decoded frame: its place in the clip, its time stamp in the stream's time base, ``uint8 (H, W, 3)``
    RGB as displayed."""

    index: int
    pts: int
    time: float
    rgb: np.ndarray


def decode_frames(container, info: VideoInfo, *, start: float = 0.0, end: float | None = None,
                  limits: VideoLimits = VideoLimits(), threads: int = 0) -> Iterator[Frame]:
    """The frames of ``container``'s first video stream whose time is in ``[start, end)`` seconds.

    ``threads``: FFmpeg's decoding threads, 0 for as many as it likes.
    Raises :class:`InvalidVideoError` naming the file when the stream cannot be decoded, breaks a limit, or
    ends before the frame count its header promises (a truncated file)."""
    av = require_av()
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    stream.codec_context.thread_count = threads
    time_base = Fraction(stream.time_base)
    if start > 0:
        try:  # to the key frame before start; frames before start are decoded and skipped
            container.seek(int(start / time_base), stream=stream, backward=True)
        except av.FFmpegError as exc:
            raise InvalidVideoError(f"{info.path}: cannot seek to {start} s ({exc})") from exc
    index = decoded = 0
    last_pts = None
    try:
        for frame in container.decode(stream):
            decoded += 1
            if frame.pts is None:  # some raw streams carry none: number the frames at the average rate
                pts = (last_pts + 1) if last_pts is not None else 0
            else:
                pts = frame.pts
            last_pts = pts
            seconds = float(pts * time_base)
            if start > 0 and seconds < start - 1e-9:  # from the key frame before start; negative stamps kept at 0
                continue
            if end is not None and seconds >= end:
                break
            if frame.width * frame.height > limits.max_pixels:
                raise InvalidVideoError(f"{info.path}: frame {index} is {frame.width}x{frame.height}, over the "
                                        f"limit of {limits.max_pixels} pixels")
            if index >= limits.max_frames:
                raise InvalidVideoError(f"{info.path}: more than {limits.max_frames} frames to process, over "
                                        "the limit (cut a section with --start/--end)")
            if seconds - start > limits.max_seconds:
                raise InvalidVideoError(f"{info.path}: more than {limits.max_seconds:g} s to process, over the "
                                        "limit (cut a section with --start/--end)")
            rgb = frame.to_ndarray(format="rgb24")
            turns = int(round((frame.rotation or 0) / 90.0)) % 4
            if turns:  # display rotation is counter-clockwise, as np.rot90 turns
                rgb = np.ascontiguousarray(np.rot90(rgb, turns))
            yield Frame(index=index, pts=pts, time=seconds, rgb=rgb)
            index += 1
    except av.FFmpegError as exc:
        raise InvalidVideoError(f"{info.path}: damaged video stream after {index} frame(s) ({exc})") from exc
    if index == 0:
        where = f" between {start} s and {end} s" if (start or end is not None) else ""
        raise InvalidVideoError(f"{info.path}: no frame could be decoded{where} (damaged or truncated)")
    if start == 0 and end is None and info.frames and decoded < info.frames:
        raise InvalidVideoError(f"{info.path}: truncated or damaged: the header promises {info.frames} frames, "
                                f"only {decoded} could be decoded")
