"""The live view's frame logic: newest frame only, drops counted, resolution adapting, smoothing as for video."""

from __future__ import annotations

import time

import numpy as np
import pytest

from cartoonkit.config import CartoonConfig
from cartoonkit.dashboard import live


class TimedEngine:
    """Stands in for a Cartoonizer whose cost grows with the resolution (seconds per megapixel), to drive the
    adaptation deterministically; it returns the frame resized, as the real one returns a cartoon."""

    def __init__(self, seconds_per_megapixel: float):
        self.rate = seconds_per_megapixel
        self.resolutions: list[int] = []

    def __call__(self, rgb, config, output):
        import cv2

        scale = config.resolution / max(rgb.shape[:2])
        size = (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale))
        self.resolutions.append(config.resolution)
        time.sleep(self.rate * size[0] * size[1] / 1e6)
        return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def _frames(n: int, height: int = 240, width: int = 320) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(n)]


def test_only_the_newest_frame_is_processed_and_the_rest_counted_as_dropped():
    engine = TimedEngine(0.0)
    viewer = live.LiveCartoonizer(engine, CartoonConfig(), resolution=256, adaptive=False, temporal=0.0)
    frames = _frames(3)
    out = viewer.process_queued(frames)
    np.testing.assert_array_equal(out, engine(frames[-1], CartoonConfig(resolution=256), "numpy"))
    viewer.process_queued(_frames(1))
    assert viewer.process_queued([]) is None
    stats = viewer.snapshot()
    assert (stats.received, stats.processed, stats.dropped) == (4, 2, 2)
    assert "2 processed, 2 dropped of 4 received" in stats.line()


def test_resolution_steps_down_when_slow_and_back_up_when_fast():
    slow = TimedEngine(seconds_per_megapixel=0.5)    # 384 px (384x288): 55 ms, 256 px: 25 ms
    viewer = live.LiveCartoonizer(slow, CartoonConfig(), resolution=384, temporal=0.0, budget_s=0.03)
    for frame in _frames(3 * live.ADAPT_EVERY):
        viewer.process_queued([frame])
    assert viewer.resolution == 256 and viewer.snapshot().resolution == 256
    slow.rate = 0.0                                   # the machine got faster (another viewer left)
    for frame in _frames(3 * live.ADAPT_EVERY):
        viewer.process_queued([frame])
    assert viewer.resolution > 256 and viewer.resolution <= viewer.max_resolution


def test_max_resolution_caps_the_climb():
    viewer = live.LiveCartoonizer(TimedEngine(0.0), CartoonConfig(), resolution=256, temporal=0.0,
                                  budget_s=1.0, max_resolution=384)
    for frame in _frames(5 * live.ADAPT_EVERY):
        viewer.process_queued([frame])
    assert viewer.resolution == 384


def test_with_the_real_engine_smoothing_off_is_the_cartoonizer_and_on_stays_close(models_dir):
    from cartoonkit.pipeline import Cartoonizer

    cartoonizer = Cartoonizer.from_pretrained("whitebox", device="cpu", precision="float32")
    y, x = np.mgrid[0:180, 0:240]
    frames = [np.stack([(x + 3 * i) % 256, (y + 2 * i) % 256, np.full_like(x, 128)], -1).astype(np.uint8)
              for i in range(3)]
    plain = live.LiveCartoonizer(cartoonizer, CartoonConfig(), resolution=256, adaptive=False, temporal=0.0)
    smooth = live.LiveCartoonizer(cartoonizer, CartoonConfig(), resolution=256, adaptive=False, temporal=0.8)
    for frame in frames:
        a, b = plain.process_queued([frame]), smooth.process_queued([frame])
        expected = cartoonizer(frame, CartoonConfig(resolution=256), output="numpy")
        np.testing.assert_array_equal(a, expected)
        assert a.shape == b.shape == (192, 256, 3)
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 12   # the smoother's clip (MAX_CHANGE)


def test_on_the_device_smoothing_off_is_the_cartoonizer_and_on_stays_close_to_the_cpu_smoothers(models_dir):
    """The device path (the frame kept on the cartoonizer's device, DeviceTemporalSmoother), forced on the CPU."""
    from cartoonkit.pipeline import Cartoonizer

    cartoonizer = Cartoonizer.from_pretrained("whitebox", device="cpu", precision="float32")
    y, x = np.mgrid[0:180, 0:240]
    frames = [np.stack([(x + 3 * i) % 256, (y + 2 * i) % 256, np.full_like(x, 128)], -1).astype(np.uint8)
              for i in range(3)]
    plain = live.LiveCartoonizer(cartoonizer, CartoonConfig(), resolution=256, adaptive=False, temporal=0.0,
                                 on_device=True)
    smooth = live.LiveCartoonizer(cartoonizer, CartoonConfig(), resolution=256, adaptive=False, temporal=0.8,
                                  on_device=True)
    on_host = live.LiveCartoonizer(cartoonizer, CartoonConfig(), resolution=256, adaptive=False, temporal=0.8)
    assert smooth.on_device and not on_host.on_device  # a CPU cartoonizer keeps the host path by default
    for frame in frames:
        a, b, c = plain.process_queued([frame]), smooth.process_queued([frame]), on_host.process_queued([frame])
        np.testing.assert_array_equal(a, cartoonizer(frame, CartoonConfig(resolution=256), output="numpy"))
        assert isinstance(b, np.ndarray) and a.shape == b.shape == (192, 256, 3)
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 12   # the smoother's clip (MAX_CHANGE)
        assert np.abs(b.astype(int) - c.astype(int)).mean() < 2.0  # another flow than the CPU's: close
    assert smooth.snapshot().cuts == 0


@pytest.mark.gpu
def test_on_cuda_the_frame_stays_on_the_device_and_agrees_with_the_cpu(models_dir):
    from cartoonkit.pipeline import Cartoonizer

    on_cuda = Cartoonizer.from_pretrained("whitebox", device="cuda")  # float16
    on_cpu = Cartoonizer.from_pretrained("whitebox", device="cpu", precision="float32")
    y, x = np.mgrid[0:180, 0:240]
    frames = [np.stack([(x + 3 * i) % 256, (y + 2 * i) % 256, np.full_like(x, 128)], -1).astype(np.uint8)
              for i in range(3)]
    viewer = live.LiveCartoonizer(on_cuda, CartoonConfig(), resolution=256, adaptive=False, temporal=0.8)
    reference = live.LiveCartoonizer(on_cpu, CartoonConfig(), resolution=256, adaptive=False, temporal=0.8,
                                     on_device=True)
    assert viewer.on_device
    for frame in frames:
        ours, theirs = viewer.process_queued([frame]), reference.process_queued([frame])
        assert isinstance(ours, np.ndarray) and ours.shape == theirs.shape == (192, 256, 3)
        # float16 against float32 (a few levels, issue 22); never run on a GPU yet: a first guess.
        assert np.abs(ours.astype(int) - theirs.astype(int)).mean() < 2.0


@pytest.mark.parametrize("value,expected", [("[]", []), ('[{"urls": ["stun:example.org"]}]',
                                                          [{"urls": ["stun:example.org"]}]),
                                             ("not json", []), ('{"urls": 1}', [])])
def test_ice_servers_from_the_environment(monkeypatch, value, expected):
    from cartoonkit.dashboard import live_page

    monkeypatch.setenv(live_page.ICE_ENV, value)
    assert live_page.ice_servers() == expected
