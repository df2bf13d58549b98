"""Live cartoonizing of a camera stream, frame by frame: what the Live page runs on each frame WebRTC delivers.

No Streamlit and no WebRTC here (so it is tested on plain frames): :class:`LiveCartoonizer` takes the frames that
queued up since its last call, cartoonizes only the newest (the others are counted as dropped: a live view shows
now, not a backlog), smooths it with the video work's :class:`~cartoonkit.video.temporal.TemporalSmoother`, and
keeps the resolution where the engine keeps up: a frame slower than the budget steps the resolution down the
:data:`LADDER`, a fast run of frames steps it back up.

On a CUDA cartoonizer the frame goes to the device once and stays there through the network and the smoothing
(:class:`~cartoonkit.video.device_temporal.DeviceTemporalSmoother`), and only the result comes back: on a GPU the
CPU's optical flow would cost more than the network.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, replace

import numpy as np

from ..run_options import VideoOptions

LADDER = (256, 320, 384, 512, 768, 1024)
"""Long sides the live view may run at (256 is the smallest the network is meant for)."""
ADAPT_EVERY = 8       # frames between two decisions, so that one slow frame does not move it
STEP_DOWN = 1.2       # median frame time over the budget by this factor: one step down
STEP_UP = 0.55        # under this share of the budget (the next step costs about 1.5-2.3x): one step up


@dataclass
class LiveStats:
    received: int = 0          # frames the browser sent
    processed: int = 0         # frames cartoonized and sent back
    dropped: int = 0           # frames skipped because the engine was busy with an earlier one
    fps: float = 0.0           # processed frames per second, over the last few seconds
    latency_ms: float = 0.0    # median time from a frame's arrival to its cartoon, last frames
    resolution: int = 0
    cuts: int = 0              # scene changes the smoother restarted at

    def line(self) -> str:
        return (f"{self.fps:.1f} frames per second · latency {self.latency_ms:.0f} ms · {self.resolution} px · "
                f"{self.processed} processed, {self.dropped} dropped of {self.received} received")


class LiveCartoonizer:
    """One viewer's stream. ``cartoonizer``: a warm :class:`~cartoonkit.pipeline.Cartoonizer`; ``config``: the
    sidebar's settings (its resolution is replaced by the live one); ``budget_s``: the time per frame to keep up
    with (``1 / fps wanted``); ``lock``: held around each frame (the dashboard's model lock, shared by sessions);
    ``on_device``: keep each frame on the cartoonizer's device and smooth it there (default: on CUDA)."""

    def __init__(self, cartoonizer, config, *, resolution: int = 320, adaptive: bool = True,
                 temporal: float = VideoOptions.temporal, budget_s: float = 1 / 8, lock=None,
                 max_resolution: int = LADDER[-1], on_device: bool | None = None):
        if on_device is None:
            device = getattr(cartoonizer, "device", None)
            on_device = device is not None and device.type == "cuda"
        self.on_device = on_device
        if on_device:
            from ..video.device_temporal import DeviceTemporalSmoother as Smoother
        else:
            from ..video.temporal import TemporalSmoother as Smoother

        self.cartoonizer, self.config = cartoonizer, config
        self.resolution = min(LADDER, key=lambda r: abs(r - resolution))
        self.adaptive, self.budget_s = adaptive, budget_s
        self.max_resolution = max_resolution
        self.lock = lock if lock is not None else threading.Lock()
        self._smoother_factory = lambda: Smoother(temporal)
        self._smoother = self._smoother_factory()
        self._shape: tuple[int, ...] | None = None
        self._times: deque[float] = deque(maxlen=ADAPT_EVERY)
        self._done_at: deque[float] = deque(maxlen=64)
        self._since_decision = 0
        self.stats = LiveStats(resolution=self.resolution)
        self._stats_lock = threading.Lock()

    def process_queued(self, frames: list[np.ndarray]) -> np.ndarray | None:
        """Cartoonize the newest of ``frames`` (``uint8 (H, W, 3)`` RGB, oldest first); None when there are none."""
        if not frames:
            return None
        arrived = time.perf_counter()
        with self._stats_lock:
            self.stats.received += len(frames)
            self.stats.dropped += len(frames) - 1
        cartoon = self.frame(frames[-1])
        finished = time.perf_counter()
        self._times.append(finished - arrived)
        self._done_at.append(finished)
        with self._stats_lock:
            self.stats.processed += 1
            span = self._done_at[-1] - self._done_at[0]
            self.stats.fps = (len(self._done_at) - 1) / span if span > 0 else 0.0
            self.stats.latency_ms = 1000 * float(np.median(self._times))
            self.stats.cuts = self._smoother.cuts
        self._adapt()
        with self._stats_lock:
            self.stats.resolution = self.resolution   # what the next frame runs at
        return cartoon

    def frame(self, rgb: np.ndarray) -> np.ndarray:
        """One frame at the current resolution, smoothed against the previous one."""
        if self.on_device:
            return self._frame_on_device(rgb)
        import cv2

        with self.lock:
            cartoon = self.cartoonizer(rgb, replace(self.config, resolution=self.resolution), output="numpy")
        photo = cv2.resize(rgb, (cartoon.shape[1], cartoon.shape[0]), interpolation=cv2.INTER_AREA)
        if cartoon.shape != self._shape:   # a new resolution or camera size: the smoother starts again
            self._shape, self._smoother = cartoon.shape, self._smoother_factory()
        return self._smoother(photo, cartoon).frame

    def _frame_on_device(self, rgb: np.ndarray) -> np.ndarray:
        """:meth:`frame` with one copy to the device and one back: the network, the input at the cartoon's size and
        the smoothing all run on the device (on CUDA they are queued, and the copy back waits for them)."""
        import torch

        from ..transforms import resize_to

        pixels = torch.from_numpy(np.ascontiguousarray(rgb)).to(self.cartoonizer.device).permute(2, 0, 1)
        with self.lock:
            cartoon = self.cartoonizer(pixels, replace(self.config, resolution=self.resolution), output="tensor")
        photo = resize_to(pixels, tuple(cartoon.shape[-2:]))
        if cartoon.shape != self._shape:   # a new resolution or camera size: the smoother starts again
            self._shape, self._smoother = cartoon.shape, self._smoother_factory()
        smoothed = self._smoother(photo[None], cartoon[None])[0]
        return smoothed.permute(1, 2, 0).cpu().numpy()

    def _adapt(self) -> None:
        self._since_decision += 1
        if not self.adaptive or self._since_decision < ADAPT_EVERY:
            return
        self._since_decision = 0
        typical = float(np.median(self._times))
        index = LADDER.index(self.resolution)
        if typical > STEP_DOWN * self.budget_s and index > 0:
            self.resolution = LADDER[index - 1]
        elif (typical < STEP_UP * self.budget_s and index + 1 < len(LADDER)
              and LADDER[index + 1] <= self.max_resolution):
            self.resolution = LADDER[index + 1]
        else:
            return
        self._times.clear()

    def snapshot(self) -> LiveStats:
        with self._stats_lock:
            return replace(self.stats)
