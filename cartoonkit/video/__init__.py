"""Video: cartoonize a clip frame by frame through the photo chain, with its sound, time stamps and rotation
kept, flicker reduced by flow-guided temporal smoothing, decode/network/encode pipelined.

>>> from cartoonkit.video import cartoonize_video
>>> summary = cartoonize_video("clip.mp4", "cartoon.mp4", CartoonConfig(resolution=512), temporal=0.8)
>>> print(summary.describe())

Modules, one job each: ``probe`` (what a clip is, the limits, PyAV), ``decode`` (frames with time stamps),
``encode`` (encode, mux, audio, the atomic rename), ``flow`` (optical flow, the occlusion check, the warping
error), ``temporal`` (the smoothing), ``pipeline`` (the threads), ``report`` (the summary). Needs the optional
``video`` extra (PyAV): ``pip install 'cartoonkit[video]'``.
"""

from .pipeline import cartoonize_video, expected_frames
from .probe import InvalidVideoError, VideoInfo, VideoLimits, open_input, probe, require_av
from .report import Flicker, VideoSummary
from .temporal import DEFAULT_STRENGTH, TemporalSmoother

__all__ = ["DEFAULT_STRENGTH", "Flicker", "InvalidVideoError", "TemporalSmoother", "VideoInfo", "VideoLimits",
           "VideoSummary", "cartoonize_video", "expected_frames", "open_input", "probe", "require_av"]
