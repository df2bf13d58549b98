"""``--precision auto`` for a clip on a CPU (cartoonkit.video.clip_precision): int8 once the clip's frames repay
compiling it, and nothing else changed. The wiring is checked by catching the options the clip loads its model
with (no int8 compilation here: that costs about 25 s and is measured in BENCHMARKS.md, not tested)."""

from __future__ import annotations

import pytest

from cartoonkit.options import EngineOptions
from cartoonkit.video import clip_precision
from cartoonkit.video.clip_precision import INT8_PAYS_BACK, clip_engine_options


@pytest.fixture
def int8_here(monkeypatch):
    """A CPU where int8 runs fast and `cartoonkit warmup` has not been run."""
    monkeypatch.setattr(clip_precision, "int8_available", lambda: True)
    monkeypatch.setattr(clip_precision, "int8_prepared", lambda: False)


def test_a_long_clip_makes_auto_int8_and_says_why(int8_here):
    options, note = clip_engine_options(EngineOptions(), "cpu", 126, 720, 1280, 1280)
    assert options.precision == "int8"
    assert options == EngineOptions(precision="int8")   # only the precision changed
    assert "126 frames of 1280x720" in note and "--precision bfloat16" in note


def test_the_threshold_counts_frames_times_the_network_megapixels(int8_here):
    # 1280x720 is 0.9216 MP: 87 frames are just over the threshold, 86 just under.
    assert 86 * 0.9216 < INT8_PAYS_BACK <= 87 * 0.9216
    assert clip_engine_options(EngineOptions(), "cpu", 87, 720, 1280, 1280)[0].precision == "int8"
    assert clip_engine_options(EngineOptions(), "cpu", 86, 720, 1280, 1280)[0].precision == "auto"
    # The network's size counts, not the clip's: the same clip at 512 px is 0.147 MP a frame.
    assert clip_engine_options(EngineOptions(), "cpu", 126, 720, 1280, 512) == (EngineOptions(), None)
    assert clip_engine_options(EngineOptions(), "cpu", 600, 1280, 720, 512)[0].precision == "int8"  # portrait


@pytest.mark.parametrize("case", ["named precision", "cuda", "unknown length", "no fast int8", "warmed up"])
def test_everything_else_is_left_alone(monkeypatch, int8_here, case):
    options, device, frames = EngineOptions(), "cpu", 1000
    if case == "named precision":
        options = EngineOptions(precision="bfloat16")
    elif case == "cuda":
        device = "cuda"
    elif case == "unknown length":
        frames = None
    elif case == "no fast int8":
        monkeypatch.setattr(clip_precision, "int8_available", lambda: False)
    else:  # auto means int8 already
        monkeypatch.setattr(clip_precision, "int8_prepared", lambda: True)
    assert clip_engine_options(options, device, frames, 720, 1280, 1280) == (options, None)


def test_the_clip_loads_its_model_with_the_chosen_options(monkeypatch, int8_here, tmp_path):
    """cartoonize_video (and so `cartoonkit video`, which leaves the loading to it) asks for int8 on a long clip."""
    pytest.importorskip("av")
    from cartoonkit import paths
    from cartoonkit.cli import main
    from cartoonkit.pipeline import Cartoonizer

    clip = paths.shared_dir() / "videos" / "dct_input.mp4"   # 1280x720, 126 frames
    asked = []

    class Loaded(Exception):
        pass

    def from_pretrained(model, *, engine_options, head_model=None):
        asked.append(engine_options)
        raise Loaded

    monkeypatch.setattr(Cartoonizer, "from_pretrained", staticmethod(from_pretrained))
    monkeypatch.setattr("cartoonkit.engine.resolve_device", lambda device="auto": __import__("torch").device("cpu"))
    with pytest.raises(Loaded):
        main(["--quiet", "video", str(clip), "-o", str(tmp_path / "out.mp4"), "--resolution", "1280"])
    with pytest.raises(Loaded):
        main(["--quiet", "video", str(clip), "-o", str(tmp_path / "out.mp4"), "--resolution", "1280", "--end", "2"])
    with pytest.raises(Loaded):
        main(["--quiet", "video", str(clip), "-o", str(tmp_path / "out.mp4"), "--resolution", "1280", "--precision",
              "float32"])
    assert [o.precision for o in asked] == ["int8", "auto", "float32"]
    assert not (tmp_path / "out.mp4").exists()
