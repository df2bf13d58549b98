"""Video: cartoonize a clip frame by frame through the photo chain, with its sound, time stamps and rotation
kept, flicker reduced by flow-guided temporal smoothing, decode/network/encode pipelined.

>>> from cartoonkit.video import cartoonize_video
>>> summary = cartoonize_video("clip.mp4", "cartoon.mp4", CartoonConfig(resolution=512), temporal=0.8)
>>> print(summary.describe())

Modules, one job each: ``probe`` (what a clip is, the limits, PyAV), ``decode`` (frames with time stamps),
``encode`` (encode, mux, audio, the atomic rename), ``flow`` (optical flow, the occlusion check, the warping
error), ``temporal`` (the smoothing), ``clip_run`` (what both runs share), ``pipeline`` (the threads),
``clip_precision`` (``auto`` for a clip on a CPU), ``report`` (the summary); on a GPU ``device_flow``,
``device_temporal`` and ``device_run`` (the clip batched on the device). Needs the optional ``video`` extra (PyAV):
``pip install 'cartoonkit[video]'``.

Importing this package (and ``probe``, ``report``) imports neither torch nor PyAV, so the command line can read
the limits while it parses; the pipeline's names load on first use.
"""

from importlib import import_module

from .probe import (
    DEFAULT_MAX_FRAMES,
    DEFAULT_MAX_PIXELS,
    DEFAULT_MAX_SECONDS,
    InvalidVideoError,
    VideoInfo,
    VideoLimits,
    open_input,
    probe,
    require_av,
)
from .report import Flicker, VideoSummary

_LAZY = {"cartoonize_video": "pipeline", "expected_frames": "probe", "TemporalSmoother": "temporal",
         "DEFAULT_STRENGTH": "temporal"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = ["DEFAULT_MAX_FRAMES", "DEFAULT_MAX_PIXELS", "DEFAULT_MAX_SECONDS", "DEFAULT_STRENGTH", "Flicker",
           "InvalidVideoError", "TemporalSmoother", "VideoInfo", "VideoLimits", "VideoSummary", "cartoonize_video",
           "expected_frames", "open_input", "probe", "require_av"]
