"""The video run on the device (cartoonkit.video.device_run), forced onto the CPU device, against the CPU run: the
same frames with smoothing off, a valid clip with it on (time stamps, audio, cuts, measuring), a stop or an error
leaves no file; and on CUDA where there is one. Clips are tiny and a few frames long (the network at 256 px)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch

av = pytest.importorskip("av")

from test_video import (  # noqa: E402  (the clip builders of tests/test_video.py)
    REAL_CLIP,
    audio_packets,
    decoded_frames,
    leftovers,
    make_clip,
    video_times,
)

from cartoonkit import CartoonConfig  # noqa: E402
from cartoonkit.video import cartoonize_video, device_run  # noqa: E402

SMALL = CartoonConfig(resolution=256)


@pytest.fixture
def on_device(monkeypatch):
    """The device run for every clip of the test, on the CPU device."""
    monkeypatch.setenv(device_run.FORCE_ENV, "1")


def _run(ck, src, dst, **settings) -> tuple[object, dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    seen: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    summary = cartoonize_video(src, dst, SMALL, cartoonizer=ck,
                               on_frame=lambda i, photo, raw, written: seen.setdefault(i, (photo, raw, written)),
                               **settings)
    return summary, seen


def test_chosen_on_cuda_or_when_forced(monkeypatch):
    monkeypatch.delenv(device_run.FORCE_ENV, raising=False)
    assert device_run.chosen(torch.device("cuda", 0)) and not device_run.chosen(torch.device("cpu"))
    monkeypatch.setenv(device_run.FORCE_ENV, "1")
    assert device_run.chosen(torch.device("cpu"))


def test_smoothing_off_gives_the_cpu_runs_frames(cartoonizer, tmp_path, monkeypatch):
    src = make_clip(tmp_path / "in.mp4", frames=5, audio="aac")
    plain, by_cpu = _run(cartoonizer, src, tmp_path / "cpu.mp4", temporal=0.0)
    monkeypatch.setenv(device_run.FORCE_ENV, "1")
    summary, by_device = _run(cartoonizer, src, tmp_path / "device.mp4", temporal=0.0, batch_size=3)  # 3 + 2
    assert summary.frames == plain.frames == 5 and sorted(by_device) == list(range(5))
    for index, (photo, raw, written) in by_device.items():
        np.testing.assert_array_equal(photo, by_cpu[index][0])  # the same decoded frame
        np.testing.assert_array_equal(written, by_cpu[index][2])  # the same photo chain, batched on the device
        np.testing.assert_array_equal(raw, written)
    assert video_times(tmp_path / "device.mp4") == pytest.approx(video_times(src), abs=1e-6)
    assert audio_packets(tmp_path / "device.mp4") == audio_packets(src)
    encoded, expected = decoded_frames(tmp_path / "device.mp4"), decoded_frames(tmp_path / "cpu.mp4")
    assert all(np.array_equal(a, b) for a, b in zip(encoded, expected, strict=True))  # the same encoder, same bytes
    assert set(summary.stages) == {"decode", "network", "temporal", "encode"} and summary.stages["network"] > 0
    assert leftovers(tmp_path) == []


def test_smoothing_on_writes_a_valid_clip_close_to_the_cpu_runs(cartoonizer, tmp_path, monkeypatch):
    time_base = Fraction(1, 1000)
    pts = [0, 40, 120, 130, 250, 260, 400]  # a variable frame rate
    src = make_clip(tmp_path / "vfr.mp4", frames=len(pts), pts=pts, time_base=time_base)
    _, by_cpu = _run(cartoonizer, src, tmp_path / "cpu.mp4", temporal=0.8)
    monkeypatch.setenv(device_run.FORCE_ENV, "1")
    summary, by_device = _run(cartoonizer, src, tmp_path / "device.mp4", temporal=0.8, batch_size=4, measure=True)
    assert summary.frames == len(pts) and len(decoded_frames(tmp_path / "device.mp4")) == len(pts)
    assert video_times(tmp_path / "device.mp4") == pytest.approx([p / 1000 for p in pts], abs=1e-6)
    differences = []
    for index, (_, raw, written) in by_device.items():
        assert np.abs(written.astype(int) - raw.astype(int)).max() <= 12  # the smoother's clip (MAX_CHANGE)
        differences.append(np.abs(written.astype(int) - by_cpu[index][2].astype(int)).mean())
    assert any(not np.array_equal(raw, written) for _, raw, written in by_device.values())  # it smoothed
    assert np.mean(differences) < 2.0, differences  # another flow than the CPU run's: close, not equal
    flicker = summary.flicker
    assert len(flicker.output) == len(pts) - 1 and len(flicker.psnr) == len(pts)
    assert flicker.output_mean < flicker.frame_by_frame_mean and summary.stages["measure"] > 0
    assert leftovers(tmp_path) == []


def test_a_cut_restarts_the_smoothing_and_is_counted(cartoonizer, tmp_path, on_device):
    src = make_clip(tmp_path / "cut.mp4", frames=8, cut_at=4)
    summary, seen = _run(cartoonizer, src, tmp_path / "out.mp4", temporal=0.8, batch_size=3)  # cut inside a batch
    assert summary.cuts == 1 and summary.frames == 8
    np.testing.assert_array_equal(seen[4][2], seen[4][1])  # the new shot's first frame is its own cartoon
    assert "1 scene cut(s)" in summary.describe()


def test_odd_size_and_rotation(cartoonizer, tmp_path, on_device):
    src = make_clip(tmp_path / "odd.mkv", frames=3, width=75, height=53, codec="ffv1", pix_fmt="yuv444p")
    summary = cartoonize_video(src, tmp_path / "odd.mp4", SMALL, cartoonizer=cartoonizer, batch_size=2)
    assert (summary.width, summary.height) == (256, 181)
    assert decoded_frames(tmp_path / "odd.mp4")[0].shape == (182, 256, 3)
    rotated = make_clip(tmp_path / "rotated.mp4", frames=3, width=64, height=48, rotation=90, marker=True)
    summary = cartoonize_video(rotated, tmp_path / "rotated-out.mp4", SMALL, cartoonizer=cartoonizer)
    assert (summary.width, summary.height) == (192, 256)


def test_an_error_in_the_writer_leaves_the_old_output_untouched(cartoonizer, tmp_path, on_device):
    src = make_clip(tmp_path / "in.mp4", frames=6)
    dst = tmp_path / "out.mp4"
    dst.write_bytes(b"the previous result")

    def explode(index, *_):
        if index == 3:
            raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        cartoonize_video(src, dst, SMALL, cartoonizer=cartoonizer, on_frame=explode, batch_size=2)
    assert dst.read_bytes() == b"the previous result" and leftovers(tmp_path) == []


def test_stop_leaves_no_file(cartoonizer, tmp_path, on_device):
    src = make_clip(tmp_path / "in.mp4", frames=8)
    calls = []
    summary = cartoonize_video(src, tmp_path / "out.mp4", SMALL, cartoonizer=cartoonizer, batch_size=2,
                               progress=lambda done, total: calls.append((done, total)),
                               should_stop=lambda: len(calls) >= 2)
    assert summary.stopped and summary.dst is None
    assert not (tmp_path / "out.mp4").exists() and leftovers(tmp_path) == []
    assert calls[0][1] == 8


def test_a_damaged_stream_is_reported_and_leaves_no_file(cartoonizer, tmp_path, on_device):
    from cartoonkit.video import InvalidVideoError

    fast = make_clip(tmp_path / "fast.mp4", frames=8, options={"movflags": "faststart"})
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(fast.read_bytes()[: fast.stat().st_size - 60])
    with pytest.raises(InvalidVideoError, match=f"{cut}: "):
        cartoonize_video(cut, tmp_path / "out.mp4", SMALL, cartoonizer=cartoonizer, batch_size=3)
    assert not (tmp_path / "out.mp4").exists() and leftovers(tmp_path) == []


@pytest.mark.gpu
def test_cuda_run_agrees_with_the_cpu_run_within_float16(tmp_path, models_dir, monkeypatch):
    from cartoonkit import Cartoonizer

    if not REAL_CLIP.is_file():
        pytest.skip(f"{REAL_CLIP} is not beside the checkout")
    monkeypatch.delenv(device_run.FORCE_ENV, raising=False)
    on_cpu = Cartoonizer.from_pretrained(device="cpu", precision="float32")
    on_cuda = Cartoonizer.from_pretrained(device="cuda")  # float16
    for temporal in (0.0, 0.8):
        cpu_summary, by_cpu = _run(on_cpu, REAL_CLIP, tmp_path / f"cpu-{temporal}.mp4", temporal=temporal, end=0.4)
        summary, by_cuda = _run(on_cuda, REAL_CLIP, tmp_path / f"cuda-{temporal}.mp4", temporal=temporal, end=0.4)
        assert summary.frames == cpu_summary.frames == 10 and summary.cuts == 0
        assert video_times(tmp_path / f"cuda-{temporal}.mp4") == pytest.approx(video_times(
            tmp_path / f"cpu-{temporal}.mp4"), abs=1e-6)
        for index, (photo, _, written) in by_cuda.items():
            np.testing.assert_array_equal(photo, by_cpu[index][0])
            difference = np.abs(written.astype(int) - by_cpu[index][2].astype(int))
            # float16 against float32 (issue 22: within a few levels), plus another flow's rounding when smoothing.
            # Never run on a GPU yet: the tolerances are a first guess.
            assert difference.mean() < (1.0 if temporal == 0 else 2.0), (temporal, index, difference.mean())
        assert summary.stages["network"] > 0 and summary.stages["encode"] > 0
