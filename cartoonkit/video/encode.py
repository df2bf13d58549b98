"""Encode the cartoon frames and mux them, with the source's audio, into a temporary file beside the
destination that is renamed over it only once complete: an interrupted or failed run leaves nothing that
looks like a finished video.

Audio: the first audio stream's packets are copied as they are when the output container can hold that codec
(AAC, MP3, Opus, ... in MP4), else decoded and re-encoded to AAC. Audio is never allowed to cost the video: if
copying or re-encoding fails, the audio stops there and a note says so. Other streams (subtitles, data) are
not carried over; the summary notes them.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from fractions import Fraction

import numpy as np

from ..errors import OutputError
from .probe import InvalidVideoError, VideoInfo, open_input, require_av

CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
AUDIO_LEAD = 1.0  # seconds of audio muxed ahead of the video, so the muxer interleaves without buffering much


def container_format(dst: str) -> str:
    suffix = os.path.splitext(dst)[1].lower()
    if suffix not in CONTAINERS:
        raise OutputError(f"{dst}: unsupported output container {suffix or '(no suffix)'}; use "
                          f"{', '.join(CONTAINERS)}")
    return CONTAINERS[suffix]


def even_size(width: int, height: int) -> tuple[int, int]:
    """yuv420p needs even sides; the frame is padded (never scaled or cropped) to them."""
    return width + width % 2, height + height % 2


def pad_even(rgb: np.ndarray) -> np.ndarray:
    """Repeat the last column/row where a side is odd: the picture keeps its place and scale."""
    height, width = rgb.shape[:2]
    if width % 2 == 0 and height % 2 == 0:
        return rgb
    return np.pad(rgb, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")


class VideoWriter:
    """One output clip. ``write`` frames in order, then ``close`` (renames into place) or ``abort`` (removes
    the temporary file). ``codec``/``crf``: the encoder and its quality (their defaults are
    :class:`~cartoonkit.run_options.VideoOptions`'); ``start`` seconds are taken off every time stamp, video and
    audio, so a cut section starts at 0; ``end`` bounds the copied audio; ``threads``: the encoder's, 0 for as
    many as it likes."""

    def __init__(self, dst: str | os.PathLike, info: VideoInfo, width: int, height: int, *,
                 codec: str, crf: int, start: float = 0.0, end: float | None = None,
                 audio: bool = True, threads: int = 0):
        av = require_av()
        self.dst = os.fspath(dst)
        self.notes: list[str] = []
        fmt = container_format(self.dst)
        directory = os.path.dirname(os.path.abspath(self.dst))
        try:
            os.makedirs(directory, exist_ok=True)
            prefix = "." + os.fsdecode(os.fsencode(os.path.basename(self.dst))[:100]) + "."
            fd, self._tmp = tempfile.mkstemp(dir=directory, prefix=prefix, suffix=".tmp")
            os.close(fd)
        except OSError as exc:
            raise OutputError(f"cannot write {self.dst}: {exc.strerror or exc}") from exc
        try:
            self._out = av.open(self._tmp, "w", format=fmt)
            self._time_base = info.time_base
            self._offset = round(Fraction(start) / info.time_base)
            self._video = self._add_video(codec, crf, width, height, info)
            self._video.codec_context.thread_count = threads
        except Exception:
            self.abort()
            raise
        self._audio = None
        if audio and info.audio:
            self._audio = _AudioCarrier(info.path, self._out, start, end, self.notes)
        for dropped in info.dropped:
            self.notes.append(f"{dropped} stream not carried over")
        self._closed = False

    def _add_video(self, codec: str, crf: int, width: int, height: int, info: VideoInfo):
        av = require_av()
        try:
            stream = self._out.add_stream(codec, rate=info.fps)
        except (av.FFmpegError, ValueError) as exc:
            raise OutputError(f"cannot write {self.dst}: video codec {codec!r} is not available "
                              f"({exc})") from exc
        stream.width, stream.height = even_size(width, height)
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = info.time_base  # the source's time stamps, unchanged (VFR too)
        if codec in ("libx264", "libx265"):
            stream.options = {"crf": str(crf), "preset": "medium"}
        elif codec.startswith("libvpx"):
            stream.options = {"crf": str(crf), "b": "0"}
        return stream

    def write(self, rgb: np.ndarray, pts: int) -> None:
        """Encode one frame, ``uint8 (H, W, 3)`` RGB, at the source's time stamp ``pts``."""
        av = require_av()
        frame = av.VideoFrame.from_ndarray(pad_even(rgb), format="rgb24")
        frame.pts = pts - self._offset
        frame.time_base = self._time_base
        if self._audio is not None:
            self._audio.pump(float(frame.pts * self._time_base) + AUDIO_LEAD)
        try:
            for packet in self._video.encode(frame):
                self._out.mux(packet)
        except av.FFmpegError as exc:
            raise OutputError(f"cannot write {self.dst}: {exc}") from exc

    def close(self) -> str:
        """Flush, finish the file and rename it into place; returns the destination."""
        av = require_av()
        try:
            for packet in self._video.encode():
                self._out.mux(packet)
            if self._audio is not None:
                self._audio.pump(None)
                self._audio.close()
            self._out.close()
            self._closed = True
            with open(self._tmp, "rb+") as file:  # the bytes on disk before the name says the file is there
                os.fchmod(file.fileno(), 0o644)  # mkstemp creates 0o600
                os.fsync(file.fileno())
            os.replace(self._tmp, self.dst)
        except (av.FFmpegError, OSError) as exc:
            self.abort()
            raise OutputError(f"cannot write {self.dst}: {getattr(exc, 'strerror', None) or exc}") from exc
        except BaseException:
            self.abort()
            raise
        return self.dst

    def abort(self) -> None:
        """Drop the temporary file (after an error or a stop); the destination is left as it was."""
        if getattr(self, "_audio", None) is not None:
            with contextlib.suppress(Exception):
                self._audio.close()
        if hasattr(self, "_out") and not getattr(self, "_closed", False):
            with contextlib.suppress(Exception):
                self._out.close()
            self._closed = True
        with contextlib.suppress(OSError):
            os.unlink(self._tmp)


class _AudioCarrier:
    """The source's first audio stream into the output, copied or re-encoded, from its own demuxer (so the
    video's decoding never waits on audio), muxed up to a given time as the video advances."""

    def __init__(self, src: str, out, start: float, end: float | None, notes: list[str]):
        av = require_av()
        self._notes = notes
        self._start, self._end = start, end
        self._input = open_input(src)
        self._stream_in = self._input.streams.audio[0]
        name = self._stream_in.codec_context.name
        self._copy = name in out.supported_codecs
        try:
            if self._copy:
                self._stream = out.add_stream_from_template(self._stream_in)
            else:
                self._stream = out.add_stream("aac", rate=self._stream_in.codec_context.sample_rate or 48000)
                notes.append(f"audio {name} cannot go into this container: re-encoded to AAC")
        except (av.FFmpegError, ValueError) as exc:
            notes.append(f"audio not carried over ({exc})")
            self._input.close()
            self._input = None
            return
        self._time_base = Fraction(self._stream_in.time_base)
        self._offset = round(Fraction(start) / self._time_base)
        self._packets = self._input.demux(self._stream_in)
        self._pending = None
        self.copied = 0

    def pump(self, until: float | None) -> None:
        """Mux audio up to ``until`` seconds of output time (everything left, for ``None``)."""
        if self._input is None:
            return
        av = require_av()
        try:
            while True:
                packet = self._pending or next(self._packets, None)
                self._pending = None
                if packet is None:
                    return
                if packet.pts is None or packet.size == 0:  # the demuxer's end-of-stream marker
                    continue
                seconds = float(packet.pts * self._time_base)
                if self._end is not None and seconds >= self._end:
                    self._packets = iter(())
                    return
                if self._start > 0 and seconds < self._start:  # without a cut, priming packets (< 0) stay
                    continue
                if until is not None and seconds - self._start > until:
                    self._pending = packet
                    return
                self._mux(packet)
        except (av.FFmpegError, InvalidVideoError, ValueError) as exc:
            self._notes.append(f"audio stopped after {self.copied} packet(s): {exc}; the video is complete")
            self.close()

    def _mux(self, packet) -> None:
        out = self._stream.container
        if self._copy:
            packet.pts -= self._offset
            if packet.dts is not None:
                packet.dts -= self._offset
            packet.stream = self._stream
            out.mux(packet)
        else:
            for frame in packet.decode():
                frame.pts = None  # the encoder numbers its own samples from 0
                for encoded in self._stream.encode(frame):
                    out.mux(encoded)
        self.copied += 1

    def close(self) -> None:
        if self._input is None:
            return
        if not self._copy:
            with contextlib.suppress(Exception):
                for encoded in self._stream.encode():
                    self._stream.container.mux(encoded)
        self._input.close()
        self._input = None
