"""cartoonkit.video.device_flow: the torch flow against known motion and against OpenCV's DIS on real frames, its
warp against cv2.remap, its forward-backward check against flow.py's, batches, dtypes and CUDA."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from cartoonkit import paths
from cartoonkit.video import device_flow
from cartoonkit.video.flow import METRIC_PRESET, _estimator, motion

CLIP = paths.shared_dir() / "videos" / "dct_input.mp4"
WIDTH = 360  # test frames: small enough for seconds on 2 cores, large enough for a 4-level pyramid


def _tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image))[None, None]


def _numpy_flow(flow: torch.Tensor) -> np.ndarray:
    return flow[0].permute(1, 2, 0).contiguous().numpy()


def _end_point(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sqrt(((a - b) ** 2).sum(-1))


@pytest.fixture(scope="module")
def photo(shared_images) -> np.ndarray:
    grey = cv2.imread(str(shared_images / "wb_london1.jpg"), cv2.IMREAD_GRAYSCALE)
    height = round(grey.shape[0] * WIDTH / grey.shape[1])
    return cv2.resize(grey, (WIDTH, height), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def clip_pairs() -> list[tuple[np.ndarray, np.ndarray]]:
    """Four pairs of consecutive grey frames of the real clip, 360 pixels wide, spread over it."""
    if not CLIP.is_file():
        pytest.skip(f"{CLIP} is not beside the checkout")
    av = pytest.importorskip("av")
    with av.open(str(CLIP)) as container:
        frames = [cv2.cvtColor(f.to_ndarray(format="rgb24"), cv2.COLOR_RGB2GRAY) for f in container.decode(video=0)]
    height = round(frames[0].shape[0] * WIDTH / frames[0].shape[1])
    small = [cv2.resize(f, (WIDTH, height), interpolation=cv2.INTER_AREA) for f in frames]
    return [(small[i], small[i + 1]) for i in (10, 40, 75, 110)]


def _moved(photo: np.ndarray, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``photo`` moved by the affine ``matrix`` (next(A x) = prev(x)) and the true flow A x - x of each pixel."""
    height, width = photo.shape
    moved = cv2.warpAffine(photo, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    x, y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    true = np.stack([matrix[0, 0] * x + matrix[0, 1] * y + matrix[0, 2] - x,
                     matrix[1, 0] * x + matrix[1, 1] * y + matrix[1, 2] - y], -1)
    return moved, true


MOTIONS = {
    "sub-pixel shift": np.float32([[1, 0, 1.3], [0, 1, -0.7]]),
    "larger shift": np.float32([[1, 0, 7.6], [0, 1, 3.2]]),
    "rotation and zoom": None,  # 2 degrees and 2 % about the centre, built from the photo's size
}


@pytest.mark.parametrize("name", list(MOTIONS))
def test_flow_finds_a_known_motion_as_well_as_dis(photo, name):
    matrix = MOTIONS[name]
    if matrix is None:
        height, width = photo.shape
        matrix = cv2.getRotationMatrix2D((width / 2, height / 2), 2.0, 1.02).astype(np.float32)
    moved, true = _moved(photo, matrix)
    ours = _numpy_flow(device_flow.dense_flow(_tensor(photo), _tensor(moved)))
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM).calc(photo, moved, None)
    inner = (slice(16, -16), slice(16, -16))  # the reflected border is no motion the flow could find
    ours_error, dis_error = _end_point(ours, true)[inner], _end_point(dis, true)[inner]
    assert np.median(ours_error) < 0.15, np.median(ours_error)
    assert np.median(ours_error) < 1.5 * np.median(dis_error), (np.median(ours_error), np.median(dis_error))
    assert np.percentile(ours_error, 95) < 0.5, np.percentile(ours_error, 95)
    # The check that can fail: no motion at all is far from this motion.
    assert np.median(_end_point(np.zeros_like(true), true)[inner]) > 10 * np.median(ours_error)


def _photometric(prev: np.ndarray, next_: np.ndarray, flow: np.ndarray) -> float:
    """Mean absolute difference between ``prev`` and ``next_`` pulled back by ``flow`` (cv2.remap), inside."""
    height, width = prev.shape
    x, y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    back = cv2.remap(next_.astype(np.float32), x + flow[..., 0], y + flow[..., 1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)
    return float(np.abs(back - prev)[8:-8, 8:-8].mean())


def test_flow_on_real_frames_is_as_good_as_dis(clip_pairs):
    ours_errors, dis_errors, still_errors, differences = [], [], [], []
    for prev, next_ in clip_pairs:
        ours = _numpy_flow(device_flow.dense_flow(_tensor(prev), _tensor(next_)))
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM).calc(prev, next_, None)
        ours_errors.append(_photometric(prev, next_, ours))
        dis_errors.append(_photometric(prev, next_, dis))
        still_errors.append(_photometric(prev, next_, np.zeros_like(dis)))
        # Textured regions (strong gradient in a neighbourhood): where both methods should agree on the motion.
        gradient = np.hypot(cv2.Sobel(prev, cv2.CV_32F, 1, 0), cv2.Sobel(prev, cv2.CV_32F, 0, 1))
        textured = cv2.GaussianBlur(gradient, (0, 0), 3) > 40
        differences.append(float(np.median(_end_point(ours, dis)[textured])))
    ours_mean, dis_mean, still_mean = np.mean(ours_errors), np.mean(dis_errors), np.mean(still_errors)
    assert ours_mean < 1.2 * dis_mean, (ours_mean, dis_mean)
    assert ours_mean < 0.85 * still_mean, (ours_mean, still_mean)  # the flow explains motion that is there (slow)
    assert max(differences) < 0.3, differences


def test_warp_matches_cv2_remap():
    rng = np.random.default_rng(1)
    image = cv2.GaussianBlur(rng.uniform(0, 255, (60, 80)).astype(np.float32), (0, 0), 1.5)
    # Flows on a 1/32-pixel grid: cv2.remap rounds sampling positions to 1/32 pixel, so there both are exact;
    # the flow reaches past every edge to test the repeated border.
    flow = np.round(rng.uniform(-6, 6, (60, 80, 2)) * 32).astype(np.float32) / 32
    x, y = np.meshgrid(np.arange(80, dtype=np.float32), np.arange(60, dtype=np.float32))
    expected = cv2.remap(image, x + flow[..., 0], y + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    ours = device_flow.warp(_tensor(image), torch.from_numpy(flow).permute(2, 0, 1)[None])[0, 0].numpy()
    np.testing.assert_allclose(ours, expected, atol=2e-3)
    # Any flow: within cv2's 1/32-pixel rounding of the position (at most 1/64 pixel times the gradient).
    flow = rng.uniform(-6, 6, (60, 80, 2)).astype(np.float32)
    expected = cv2.remap(image, x + flow[..., 0], y + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    ours = device_flow.warp(_tensor(image), torch.from_numpy(flow).permute(2, 0, 1)[None])[0, 0].numpy()
    slope = np.abs(np.gradient(image)).sum(0).max()
    assert np.abs(ours - expected).max() <= slope / 32, (np.abs(ours - expected).max(), slope)
    assert np.abs(ours - image).mean() > 10  # the warp moved the image


def test_mask_matches_flow_py_check(clip_pairs):
    """Given the DIS flows flow.motion computes, our check on the device marks the same pixels as flow.py's."""
    prev, current = clip_pairs[1]
    prev, current = prev.copy(), current.copy()
    # A block pasted in one frame only: an occlusion both checks must catch.
    current[60:120, 100:180] = 255 - current[60:120, 100:180]
    expected = motion(prev, current, preset=METRIC_PRESET).mask
    estimator = _estimator(METRIC_PRESET)  # the same object motion used, called in the same order
    backward = estimator.calc(current, prev, None)
    forward = estimator.calc(prev, current, None)

    def as_torch(f):
        return torch.from_numpy(f).permute(2, 0, 1)[None]

    ours = device_flow.forward_backward_mask(as_torch(forward), as_torch(backward))[0, 0].numpy()
    assert ours.shape == expected.shape and ours.dtype == bool
    # cv2.remap reads the forward flow at 1/32-pixel positions, grid_sample exactly: pixels right at the
    # threshold may differ, nothing else.
    agreement = (ours == expected).mean()
    assert agreement > 0.995, agreement
    assert expected.mean() < 0.98 and ours[70:110, 110:170].mean() < 0.5  # the pasted block is rejected


def test_batch_gives_the_same_as_single_pairs(clip_pairs):
    prev = torch.cat([_tensor(p) for p, _ in clip_pairs[:3]])
    next_ = torch.cat([_tensor(n) for _, n in clip_pairs[:3]])
    batched = device_flow.dense_flow(prev, next_)
    assert batched.shape == (3, 2, *clip_pairs[0][0].shape) and batched.dtype == torch.float32
    for i in range(3):
        single = device_flow.dense_flow(prev[i:i + 1], next_[i:i + 1])
        torch.testing.assert_close(batched[i:i + 1], single, atol=1e-3, rtol=1e-4)
    assert not torch.allclose(batched[0], batched[1], atol=0.05)  # different pairs, different flows


def test_uint8_and_float_input_agree(clip_pairs):
    prev, next_ = clip_pairs[0]
    from_uint8 = device_flow.dense_flow(_tensor(prev), _tensor(next_))
    from_float = device_flow.dense_flow(_tensor(prev).float(), _tensor(next_).float())
    from_2d = device_flow.dense_flow(torch.from_numpy(prev), torch.from_numpy(next_))
    assert from_uint8.dtype == torch.float32 and torch.isfinite(from_uint8).all()
    torch.testing.assert_close(from_uint8, from_float)
    torch.testing.assert_close(from_uint8, from_2d)
    with pytest.raises(ValueError, match="differ in shape"):
        device_flow.dense_flow(_tensor(prev), _tensor(next_[:-1]))


def test_finest_level_trades_accuracy_for_speed(photo):
    """``finest=1`` (half size, as DIS medium) still finds a shift, less precisely than full size."""
    moved, true = _moved(photo, MOTIONS["sub-pixel shift"])
    inner = (slice(16, -16), slice(16, -16))
    full = np.median(_end_point(_numpy_flow(device_flow.dense_flow(_tensor(photo), _tensor(moved))), true)[inner])
    half = np.median(_end_point(_numpy_flow(device_flow.dense_flow(_tensor(photo), _tensor(moved), finest=1)),
                                true)[inner])
    assert full < half < 0.3, (full, half)


def test_runs_on_the_meta_device():
    """Tensors without data: any read of a value on the host (``.item()``, ``if tensor``, ``.cpu()``), which
    would synchronise with a GPU every frame, raises here; shapes and dtypes come out as on a real device."""
    frames = torch.zeros(2, 1, 90, 160, dtype=torch.uint8, device="meta")
    flow = device_flow.dense_flow(frames, frames)
    assert flow.shape == (2, 2, 90, 160) and flow.device.type == "meta" and flow.dtype == torch.float32
    mask = device_flow.forward_backward_mask(flow, flow)
    assert mask.shape == (2, 1, 90, 160) and mask.dtype == torch.bool
    assert device_flow.warp(frames.float(), flow).shape == (2, 1, 90, 160)


@pytest.mark.gpu
def test_cuda_matches_cpu(clip_pairs):
    prev = torch.cat([_tensor(p) for p, _ in clip_pairs])
    next_ = torch.cat([_tensor(n) for _, n in clip_pairs])
    cpu = device_flow.dense_flow(prev, next_)
    prev_cuda, next_cuda = prev.cuda(), next_.cuda()  # (a copy from pageable memory synchronises)
    device_flow.dense_flow(prev_cuda, next_cuda)  # first call: the cached kernels are copied over
    torch.cuda.set_sync_debug_mode("error")  # from here, a host synchronisation raises
    try:
        cuda = device_flow.dense_flow(prev_cuda, next_cuda)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert cuda.device.type == "cuda"
    # Different summation orders in the convolutions (and TF32 in cuDNN's, where it is on): small differences,
    # amplified a little by the iterations. Never run on a GPU yet: the tolerances are a first guess.
    difference = (cuda.cpu() - cpu).norm(dim=1)
    assert difference.median() < 0.02 and (difference > 0.25).float().mean() < 0.005, difference.max()
    mask_cpu = device_flow.forward_backward_mask(cpu, cpu.flip(0))
    mask_cuda = device_flow.forward_backward_mask(cuda, cuda.flip(0)).cpu()
    assert (mask_cpu == mask_cuda).float().mean() > 0.999
    warped_cuda = device_flow.warp(prev.float().cuda(), cuda).cpu()
    torch.testing.assert_close(warped_cuda, device_flow.warp(prev.float(), cuda.cpu()), atol=1e-3, rtol=1e-4)
