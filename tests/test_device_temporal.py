"""cartoonkit.video.device_temporal: the device smoother on the CPU device (its luma and histogram against OpenCV's
and the CPU smoother's, strength 0, steadying, cuts, the clip, batching) and on the real clip against the CPU
smoother; on the meta device (no host read per batch) and on CUDA where there is one."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from cartoonkit import CartoonConfig, paths
from cartoonkit.imageio import DecodedImage
from cartoonkit.video.device_temporal import DeviceTemporalSmoother, histograms, luma
from cartoonkit.video.flow import METRIC_PRESET, gray, motion, psnr, warping_error
from cartoonkit.video.temporal import MAX_CHANGE, TemporalSmoother, _histogram

CLIP = paths.shared_dir() / "videos" / "dct_input.mp4"


def scene(width: int, height: int, t: int, kind: int = 0) -> np.ndarray:
    """A textured picture moving one pixel per frame to the right (``kind`` 1: another shot entirely)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    x = x - t
    if kind == 0:
        channels = (128 + 90 * np.sin(x / 7.0) * np.cos(y / 9.0), 128 + 80 * np.cos((x + y) / 11.0),
                    100 + 60 * np.sin(y / 5.0))
    else:
        channels = (40 + 30 * np.cos(x / 3.0), 200 + 40 * np.sin(y / 4.0), 220 - 30 * np.cos((x - y) / 6.0))
    return np.clip(np.stack(channels, axis=2), 0, 255).astype(np.uint8)


def noisy(photos: list[np.ndarray], amplitude: int, seed: int = 0) -> list[np.ndarray]:
    """Flickering "cartoons": each photo plus noise that changes every frame, as the network's boil does."""
    rng = np.random.default_rng(seed)
    return [np.clip(p.astype(np.int16) + rng.integers(-amplitude, amplitude + 1, p.shape), 0, 255).astype(np.uint8)
            for p in photos]


def batch(frames: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).contiguous()


def frames_of(smoothed: torch.Tensor) -> list[np.ndarray]:
    return list(smoothed.permute(0, 2, 3, 1).numpy())


def smooth_in_batches(smoother: DeviceTemporalSmoother, photos: torch.Tensor, cartoons: torch.Tensor,
                      size: int) -> torch.Tensor:
    return torch.cat([smoother(photos[i:i + size], cartoons[i:i + size]) for i in range(0, len(photos), size)])


def test_luma_and_histogram_are_the_cpu_smoothers():
    rgb = np.random.default_rng(1).integers(0, 256, (2, 61, 83, 3), dtype=np.uint8)
    lumas = luma(batch(list(rgb)))
    assert lumas.shape == (2, 1, 61, 83) and lumas.dtype == torch.float32
    for i in range(2):
        expected = gray(rgb[i])
        np.testing.assert_array_equal(lumas[i, 0].numpy(), expected)  # OpenCV's fixed-point weights, exactly
        np.testing.assert_allclose(histograms(lumas)[i].numpy(), _histogram(expected), atol=1e-6)


def test_strength_zero_returns_the_cartoons_unchanged():
    photos = batch([scene(48, 32, t) for t in range(3)])
    cartoons = batch(noisy([scene(48, 32, t) for t in range(3)], 8))
    assert DeviceTemporalSmoother(0.0)(photos, cartoons) is cartoons
    from_float = DeviceTemporalSmoother(0.0)(photos.float(), cartoons.float())
    assert from_float.dtype == torch.uint8 and torch.equal(from_float, cartoons)
    with pytest.raises(ValueError, match="between 0 and 1"):
        DeviceTemporalSmoother(1.5)
    with pytest.raises(ValueError, match="one shape"):
        DeviceTemporalSmoother(0.8)(photos, cartoons[:, :, :-1])


def test_a_static_scene_with_noisy_cartoons_gets_steadier():
    photos = [scene(96, 64, 0)] * 6
    cartoons = noisy(photos, 8)
    smoother = DeviceTemporalSmoother(0.8)
    smoothed = frames_of(smoother(batch(photos), batch(cartoons)))

    def change(frames):  # mean change from one frame to the next, where nothing moved
        steps = zip(frames[:-1], frames[1:], strict=True)
        return np.mean([np.abs(a.astype(int) - b.astype(int)).mean() for a, b in steps])

    assert change(smoothed) < 0.5 * change(cartoons), (change(smoothed), change(cartoons))
    np.testing.assert_array_equal(smoothed[0], cartoons[0])  # the first frame is its own cartoon
    assert smoother.cuts == 0 and smoother.reliable > 0.95


def test_moving_scene_agrees_with_the_cpu_smoother_and_uint8_equals_float():
    photos = [scene(96, 64, t) for t in range(8)]
    cartoons = noisy(photos, 8)
    device = DeviceTemporalSmoother(0.8)
    smoothed = frames_of(smooth_in_batches(device, batch(photos), batch(cartoons), 3))
    cpu = TemporalSmoother(0.8)
    for photo, cartoon, ours in zip(photos, cartoons, smoothed, strict=True):
        theirs = cpu(photo, cartoon).frame
        # Another flow (dense Lucas-Kanade against DIS) and an unrounded warp: close, not equal.
        assert np.abs(ours.astype(int) - theirs.astype(int)).mean() < 1.5
    from_float = DeviceTemporalSmoother(0.8)(batch(photos).float(), batch(cartoons).float())
    assert torch.equal(from_float, batch(smoothed))


def test_a_cut_restarts_and_is_counted():
    photos = [scene(96, 64, t, kind=int(t >= 4)) for t in range(8)]
    cartoons = noisy(photos, 8)
    smoother = DeviceTemporalSmoother(0.8)
    smoothed = frames_of(smooth_in_batches(smoother, batch(photos), batch(cartoons), 3))  # the cut inside a batch
    assert smoother.cuts == 1
    np.testing.assert_array_equal(smoothed[4], cartoons[4])  # the new shot's first frame is its own cartoon
    assert all(not np.array_equal(smoothed[i], cartoons[i]) for i in (1, 2, 3, 5, 6, 7))  # elsewhere it acts
    other_size = batch([scene(80, 64, t) for t in range(2)])
    smoother(other_size, other_size)  # a new frame size starts again too, as on the CPU
    assert smoother.cuts == 2


def test_no_pixel_moves_more_than_max_change():
    photos = [scene(96, 64, 0)] * 5
    cartoons = noisy(photos, 40)  # noise far over the cap, so the clip is what limits the pull
    smoothed = DeviceTemporalSmoother(1.0)(batch(photos), batch(cartoons))
    change = (smoothed.int() - batch(cartoons).int()).abs()
    assert change.max() == MAX_CHANGE


def test_batches_of_one_and_of_four_give_the_same_frames():
    photos = batch([scene(96, 64, t, kind=int(t >= 6)) for t in range(9)])
    cartoons = batch(noisy([scene(96, 64, t, kind=int(t >= 6)) for t in range(9)], 8))
    one, four = DeviceTemporalSmoother(0.8), DeviceTemporalSmoother(0.8)
    by_one = smooth_in_batches(one, photos, cartoons, 1)
    by_four = smooth_in_batches(four, photos, cartoons, 4)
    assert torch.equal(by_one, by_four)
    assert one.cuts == four.cuts == 1 and one.reliable == pytest.approx(four.reliable)


def test_queues_without_reading_the_device():
    """On the meta device (tensors without data) any host read (``.item()``, ``if tensor``, ``.cpu()``), which
    would synchronise with a GPU once per frame, raises."""
    frames = torch.zeros(3, 3, 72, 96, dtype=torch.uint8, device="meta")
    smoother = DeviceTemporalSmoother(0.8)
    for _ in range(2):
        out = smoother(frames, frames)
    assert out.shape == frames.shape and out.dtype == torch.uint8 and out.device.type == "meta"


# ----------------------------------------------------------------------------------------- the real clip


@pytest.fixture(scope="module")
def clip(cartoonizer) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The first 20 frames of the shared clip at 256 px wide and the network's cartoons of them."""
    if not CLIP.is_file():
        pytest.skip(f"{CLIP} is not beside the checkout")
    av = pytest.importorskip("av")
    with av.open(str(CLIP)) as container:
        decoder = container.decode(video=0)
        frames = [next(decoder).to_ndarray(format="rgb24") for _ in range(20)]
    config = CartoonConfig(resolution=256)
    decoded = [DecodedImage(rgb=torch.from_numpy(f).permute(2, 0, 1).contiguous(), alpha=None, name=f"frame {i}",
                            format="video") for i, f in enumerate(frames)]
    cartoons = [r.rgb.permute(1, 2, 0).numpy() for r in cartoonizer.process_many(decoded, config, max_batch=4)]
    height, width = cartoons[0].shape[:2]
    photos = [cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA) for f in frames]
    return photos, cartoons


def _warping_error(photos, frames) -> float:
    """Mean warping error of ``frames`` with the metric's flow (DIS medium on the input), as ``--measure``."""
    errors = [warping_error(frames[t], frames[t - 1],
                            motion(gray(photos[t - 1]), gray(photos[t]), preset=METRIC_PRESET))
              for t in range(1, len(frames))]
    return float(np.mean(errors))


def test_on_the_real_clip_as_steady_as_the_cpu_smoother_and_close_to_frame_by_frame(clip):
    photos, cartoons = clip
    cpu = TemporalSmoother(0.8)
    by_cpu = [cpu(p, c).frame for p, c in zip(photos, cartoons, strict=True)]
    device = DeviceTemporalSmoother(0.8)
    by_device = frames_of(smooth_in_batches(device, batch(photos), batch(cartoons), 8))
    raw, ours, theirs = (_warping_error(photos, frames) for frames in (cartoons, by_device, by_cpu))
    assert ours < 0.9 * raw, (ours, raw)
    assert ours <= 1.05 * theirs, (ours, theirs)
    quality = np.mean([min(psnr(s, c), 100.0) for s, c in zip(by_device, cartoons, strict=True)])
    assert quality >= 38.0, quality
    assert device.cuts == cpu.cuts == 0


@pytest.mark.gpu
def test_cuda_matches_the_cpu_device_without_a_host_synchronisation(clip):
    photos, cartoons = batch(clip[0][:8]), batch(clip[1][:8])
    on_cpu = DeviceTemporalSmoother(0.8)(photos, cartoons)
    photos_cuda, cartoons_cuda = photos.cuda(), cartoons.cuda()  # (a copy from pageable memory synchronises)
    DeviceTemporalSmoother(0.8)(photos_cuda[:2], cartoons_cuda[:2])  # first call: cached kernels copied over
    smoother = DeviceTemporalSmoother(0.8)
    torch.cuda.set_sync_debug_mode("error")  # from here, a host synchronisation raises
    try:
        on_cuda = torch.cat([smoother(photos_cuda[i:i + 4], cartoons_cuda[i:i + 4]) for i in (0, 4)])
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert on_cuda.device.type == "cuda" and smoother.cuts == 0
    # Another summation order in the flow's convolutions (TF32 where cuDNN uses it): a level here and there.
    difference = (on_cuda.cpu().int() - on_cpu.int()).abs()
    assert difference.float().mean() < 0.2 and difference.max() <= MAX_CHANGE, difference.float().mean()
