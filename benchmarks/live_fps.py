"""Frames per second of the dashboard's Live view on this machine, without a browser: the Live page's own frame
logic (:class:`cartoonkit.dashboard.live.LiveCartoonizer`, smoothing on, adaptation off) on a moving 640x480 test
pattern, at each fixed resolution, one frame at a time as WebRTC delivers them. On CUDA the frame stays on the
device through the network and the smoothing (the Live page's path there).

    .venv/bin/python benchmarks/live_fps.py [--device cpu|cuda] [--precision auto] [--frames 30]
                                            [--resolutions 256 320 384 512]
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def frames(count: int, height: int = 480, width: int = 640) -> list[np.ndarray]:
    y, x = np.mgrid[0:height, 0:width]
    return [np.stack([(x + 4 * i) % 256, (y + 3 * i) % 256, (x + y + 2 * i) % 256], -1).astype(np.uint8)
            for i in range(count)]


def measure(cartoonizer, resolutions: list[int], count: int, warm: int = 3) -> dict[int, float]:
    """Frames per second at each resolution: ``count`` frames after ``warm`` untimed ones (first-call allocations,
    cuDNN's choice of kernels, a compiled shape). Each frame returns as a host array, so on CUDA the time includes
    the device's work."""
    from cartoonkit.config import CartoonConfig
    from cartoonkit.dashboard.live import LiveCartoonizer

    clip = frames(count + warm)
    rates = {}
    for resolution in resolutions:
        viewer = LiveCartoonizer(cartoonizer, CartoonConfig(), resolution=resolution, adaptive=False)
        for frame in clip[:warm]:
            viewer.process_queued([frame])
        started = time.perf_counter()
        for frame in clip[warm:]:
            viewer.process_queued([frame])
        rates[resolution] = count / (time.perf_counter() - started)
    return rates


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--resolutions", type=int, nargs="+", default=[256, 320, 384, 512])
    args = parser.parse_args()

    from cartoonkit.hardware import cpu_model_name
    from cartoonkit.pipeline import Cartoonizer

    cartoonizer = Cartoonizer.from_pretrained("whitebox", device=args.device, precision=args.precision)
    if cartoonizer.device.type == "cuda":
        import torch

        machine = torch.cuda.get_device_name(cartoonizer.device)
    else:
        machine = cpu_model_name()
    print(f"{machine}, precision {cartoonizer.engine.precision}, {args.frames} frames of 640x480")
    for resolution, rate in measure(cartoonizer, args.resolutions, args.frames).items():
        print(f"  {resolution:4d} px: {rate:5.1f} frames per second "
              f"({1000 / rate:.0f} ms a frame, smoothing included)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
