"""Frames per second of the dashboard's Live view on this machine, without a browser: the Live page's own frame
logic (:class:`cartoonkit.dashboard.live.LiveCartoonizer`, smoothing on, adaptation off) on a moving 640x480 test
pattern, at each fixed resolution, one frame at a time as WebRTC delivers them.

    .venv/bin/python benchmarks/live_fps.py [--precision auto] [--frames 30] [--resolutions 256 320 384 512]
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def frames(count: int, height: int = 480, width: int = 640) -> list[np.ndarray]:
    y, x = np.mgrid[0:height, 0:width]
    return [np.stack([(x + 4 * i) % 256, (y + 3 * i) % 256, (x + y + 2 * i) % 256], -1).astype(np.uint8)
            for i in range(count)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--resolutions", type=int, nargs="+", default=[256, 320, 384, 512])
    args = parser.parse_args()

    from cartoonkit.config import CartoonConfig
    from cartoonkit.dashboard.live import LiveCartoonizer
    from cartoonkit.hardware import cpu_model_name
    from cartoonkit.pipeline import Cartoonizer

    cartoonizer = Cartoonizer.from_pretrained("whitebox", device="cpu", precision=args.precision)
    print(f"{cpu_model_name()}, precision {cartoonizer.engine.precision}, {args.frames} frames of 640x480")
    clip = frames(args.frames + 3)
    for resolution in args.resolutions:
        viewer = LiveCartoonizer(cartoonizer, CartoonConfig(), resolution=resolution, adaptive=False)
        for frame in clip[:3]:   # warm: first-call allocations (and a compiled shape, if any)
            viewer.process_queued([frame])
        started = time.perf_counter()
        for frame in clip[3:]:
            viewer.process_queued([frame])
        seconds = time.perf_counter() - started
        print(f"  {resolution:4d} px: {args.frames / seconds:5.1f} frames per second "
              f"({1000 * seconds / args.frames:.0f} ms a frame, smoothing included)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
