"""The wiring: one settings path, one chain, a composable Cartoonizer, the process rules and a light start-up.

Each test pins a way the old wiring went wrong (see docs/architecture.md): a setting missing from one of its
seven copies, a resume fingerprint that disagreed with the engine, rules that only the CLI knew.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
import torch

import cartoonkit
from cartoonkit import CartoonConfig, ConfigError, EngineOptions
from cartoonkit.cli import build_parser, main
from cartoonkit.folder import STATE_FILE, run_folder
from cartoonkit.folder.state import fingerprint
from cartoonkit.imageio import read_image
from cartoonkit.run_options import FolderOptions, VideoOptions, run_setting
from cartoonkit.settings import (
    Widget,
    add_arguments,
    apply_changes,
    declared,
    fingerprint_values,
    flag,
    from_arguments,
    setting,
)
from cartoonkit.video.temporal import TemporalSmoother

RES = 256


# --------------------------------------------------------------------------- one settings path


@dataclass(frozen=True)
class _WithGrain(CartoonConfig):
    """CartoonConfig plus one new setting, declared the one way settings are declared."""

    grain: float = setting(0.0, float, "film grain strength, 0-1", low=0.0, high=1.0,
                           widget=Widget("slider", "Grain", step=0.1))


class _RecordingSidebar:
    """Stands in for ``st.sidebar``: records the widgets drawn and answers with their defaults."""

    def __init__(self):
        self.widgets: dict[str, str] = {}

    def expander(self, label):
        return self

    def _widget(self, kind):
        def draw(label, *args, key, help, disabled, **kwargs):
            self.widgets[key] = kind
            if kind == "slider":
                return kwargs["value"] if "value" in kwargs else args[2]
            if kind in ("selectbox", "radio"):
                return args[0][kwargs["index"]]
            return kwargs["value"]
        return draw

    def __getattr__(self, kind):
        return self._widget(kind)


def test_a_setting_declared_once_reaches_the_cli_the_dashboard_and_the_fingerprint():
    from cartoonkit.dashboard.common import draw_settings

    parser = argparse.ArgumentParser()
    add_arguments(parser, _WithGrain)
    args = parser.parse_args(["--grain", "0.5"])
    assert args.grain == 0.5 and "film grain" in parser.format_help()
    with pytest.raises(ConfigError, match="grain=2.0: out of range"):
        _WithGrain(grain=2.0)
    assert fingerprint_values(_WithGrain(grain=0.5))["grain"] == 0.5
    sidebar = _RecordingSidebar()
    values = draw_settings(sidebar, _WithGrain, {})
    assert sidebar.widgets["grain"] == "slider" and values["grain"] == 0.0
    assert _WithGrain(**values) == _WithGrain()  # the widgets' defaults are the declared ones


def test_every_declared_setting_is_a_flag_a_widget_and_in_the_fingerprint(models_dir, capsys):
    from streamlit.testing.v1 import AppTest

    from cartoonkit import paths

    with pytest.raises(SystemExit):
        build_parser().parse_args(["batch", "--help"])
    help_text = capsys.readouterr().out
    config_names = list(declared(CartoonConfig))
    assert "face_size" in config_names
    for name in config_names + ["device", "precision", "compile", "cuda_graphs"]:
        assert flag(name) in help_text, name
    card = argparse.Namespace(name="m", weights_sha256="0")
    recorded = fingerprint(card, None, CartoonConfig(), EngineOptions().resolved("cpu"), FolderOptions())
    assert set(config_names) | {"precision", "bucket"} <= set(recorded)
    assert not set(declared(FolderOptions)) & set(recorded)  # none of a run's options changes an output's bytes
    at = AppTest.from_file(str(paths.project_root() / "streamlit_app.py"), default_timeout=60)
    at.run()
    assert not at.exception
    keys = {w.key for kind in ("slider", "selectbox", "radio", "select_slider") for w in at.sidebar.get(kind)}
    assert set(config_names) | {"device", "precision"} <= keys, set(config_names) - keys


def test_face_size_from_the_dashboard_reaches_the_config(models_dir):
    from streamlit.testing.v1 import AppTest

    from cartoonkit import paths
    from cartoonkit.dashboard import common

    at = AppTest.from_file(str(paths.project_root() / "streamlit_app.py"), default_timeout=60)
    at.run()
    assert at.sidebar.slider(key="face_size").disabled  # only means something in compound mode
    at.sidebar.radio(key="mode").set_value("compound").run()
    at.sidebar.slider(key="face_size").set_value(256).run()
    assert not at.exception
    settings = at.session_state[common.SETTINGS_KEY]
    assert (settings.config.mode, settings.config.face_size) == ("compound", 256)


def test_each_dashboard_page_has_its_own_url(models_dir):
    from streamlit.testing.v1 import AppTest

    from cartoonkit import paths
    from cartoonkit.dashboard import PAGES, page_file

    at = AppTest.from_file(str(paths.project_root() / "streamlit_app.py"), default_timeout=60)
    at.run()
    titles = {"Cartoonize": "Cartoonize", "Live": "Live", "Batch": "Batch", "Video": "Video",
              "Compare": "Compare settings", "Gallery": "Gallery", "Performance": "Performance"}
    for page in PAGES:
        at.switch_page(str(page_file(page).relative_to(paths.project_root()))).run()
        assert not at.exception and at.title[0].value == titles[page], page
    assert len(set(PAGES.values())) == len(PAGES)


# --------------------------------------------------------------------------- fingerprint and process rules


def test_the_int8_fingerprint_through_the_api_resumes_from_the_cli(capsys, tmp_path, models_dir):
    empty = tmp_path / "in"
    empty.mkdir()
    for out, kwargs in ((tmp_path / "options", {}), (tmp_path / "warm", {"warm": True})):
        if kwargs:
            from cartoonkit import Cartoonizer

            ck = Cartoonizer.from_pretrained(device="cpu", precision="int8")  # calibrates, compiles nothing yet
            run_folder(empty, out, CartoonConfig(resolution=RES), cartoonizer=ck, progress=False)
            assert ck.engine.bucket == 64
        else:
            run_folder(empty, out, CartoonConfig(resolution=RES), engine_options=EngineOptions(precision="int8"),
                       progress=False)
        recorded = json.loads((out / STATE_FILE).read_text())["settings"]
        assert (recorded["precision"], recorded["bucket"]) == ("int8", 64), out
        code = main(["-q", "batch", str(empty), "-o", str(out), "--resume", "--precision", "int8",
                     "--resolution", str(RES)])
        assert code == 0, capsys.readouterr().err
        code = main(["-q", "batch", str(empty), "-o", str(out), "--resume", "--resolution", str(RES)])
        assert code == 2 and "other settings" in capsys.readouterr().err  # bfloat16/float32, bucket 4


@dataclass(frozen=True)
class _WithSharpen(EngineOptions):
    """EngineOptions plus a switch that changes the output, declared the one way settings are declared."""

    sharpen: bool = setting(False, bool, "sharpen the network's input")


def test_a_new_engine_switch_reaches_the_fingerprint_and_resume_refuses_a_change(tmp_path, capsys):
    empty = tmp_path / "in"
    empty.mkdir()
    out = tmp_path / "out"
    options = _WithSharpen(device="cpu", precision="float32", sharpen=True)
    run_folder(empty, out, CartoonConfig(resolution=RES), options, progress=False)
    recorded = json.loads((out / STATE_FILE).read_text())["settings"]
    assert recorded["sharpen"] is True and (recorded["precision"], recorded["bucket"]) == ("float32", 4)
    run_folder(empty, out, CartoonConfig(resolution=RES), options, resume=True, progress=False)  # the same: resumes
    with pytest.raises(ConfigError, match="sharpen False, was True"):
        run_folder(empty, out, CartoonConfig(resolution=RES), replace(options, sharpen=False), resume=True,
                   progress=False)


@dataclass(frozen=True)
class _WithQueue(FolderOptions):
    """FolderOptions plus one new run option."""

    queue_depth: int = run_setting(2, int, "batches read ahead of the network", low=1, high=64)


def test_a_run_option_declared_once_reaches_the_cli_the_api_and_stays_out_of_the_fingerprint(tmp_path):
    parser = argparse.ArgumentParser()
    add_arguments(parser, _WithQueue)
    args = parser.parse_args(["--queue-depth", "5", "--batch-size", "3"])
    assert (args.queue_depth, args.batch_size) == (5, 3) and "batches read ahead" in parser.format_help()
    options = from_arguments(_WithQueue, args)
    assert options.queue_depth == 5 and options.batch_size == 3
    with pytest.raises(ConfigError, match="queue_depth=0: out of range"):
        _WithQueue(queue_depth=0)
    assert "queue_depth" not in fingerprint_values(options)  # a run option: no output byte depends on it
    (_, _, changed) = apply_changes({"queue_depth": 7, "resolution": 512}, CartoonConfig(), EngineOptions(), options)
    assert changed.queue_depth == 7
    with pytest.raises(ConfigError, match="unknown setting.*queue_dept\\b"):
        apply_changes({"queue_dept": 7}, CartoonConfig(), EngineOptions(), options)


def test_run_and_video_flags_come_from_their_declarations(capsys):
    for command, cls in (("batch", FolderOptions), ("video", VideoOptions)):
        with pytest.raises(SystemExit):
            build_parser().parse_args([command, "--help"])
        help_text = capsys.readouterr().out
        for name, (spec, default) in declared(cls).items():
            if spec.cli:
                assert flag(f"no_{name}" if default is True else name) in help_text, (command, name)
    args = build_parser().parse_args(["video", "in.mp4", "-o", "out.mp4", "--no-audio", "--temporal", "0.5"])
    assert from_arguments(VideoOptions, args) == VideoOptions(audio=False, temporal=0.5)
    args = build_parser().parse_args(["batch", "in", "--devices", "cuda:0, cuda:1", "--batch-size", "4"])
    assert from_arguments(FolderOptions, args) == FolderOptions(devices=("cuda:0", "cuda:1"), batch_size=4)
    assert VideoOptions.temporal == TemporalSmoother().strength  # the smoother's default is the declared one


def test_the_old_engine_flag_still_works_for_one_release_and_says_so(capsys, tmp_path):
    (tmp_path / "in").mkdir()
    code = main(["-q", "batch", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--engine", "local",
                 "--device", "cpu", "--precision", "float32"])
    err = capsys.readouterr().err
    assert code == 0 and "--engine local is deprecated" in err and "use --backend local" in err
    assert json.loads((tmp_path / "out" / "cartoonkit-report.json").read_text())["backend"] == "local"
    code = main(["-q", "batch", str(tmp_path / "in"), "-o", str(tmp_path / "out2"), "--engine", "local",
                 "--backend", "ray"])
    assert code == 2 and "disagree" in capsys.readouterr().err


def test_no_import_loop_and_no_module_over_600_lines():
    from import_graph import cycles, import_graph

    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]  # it finds loops
    package = Path(cartoonkit.__file__).parent
    graph = import_graph(package)
    assert "cartoonkit.options" in graph["cartoonkit.engine"]  # it sees the package's imports
    assert cycles(graph) == []
    long = {str(p.relative_to(package)): n for p in package.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 600}
    assert long == {}


@pytest.mark.parametrize("kwargs", [{"workers": 2}, {"devices": ["cpu", "cpu"]}])
@pytest.mark.parametrize("options", [EngineOptions(precision="int8"), EngineOptions(compile=True)])
def test_the_process_rule_holds_through_the_api(tmp_path, kwargs, options):
    (tmp_path / "in").mkdir()
    with pytest.raises(ConfigError, match="work with one process"):
        run_folder(tmp_path / "in", tmp_path / "out", engine_options=options, progress=False, **kwargs)
    assert not (tmp_path / "out").exists()  # refused before anything was written


# --------------------------------------------------------------------------- the public object and its chain


def test_call_takes_every_setting(cartoonizer, shared_images):
    path = shared_images / "wb_actress2.jpg"
    cartoon = cartoonizer(path, mode="compound", upscale=1.2, resolution=RES)
    config = CartoonConfig(mode="compound", upscale=1.2, resolution=RES)
    expected = cartoonizer.process(read_image(path), config)
    assert np.array_equal(cartoon, expected.rgb.permute(1, 2, 0).numpy())
    assert any("compound mode: 1 face(s)" in note for note in expected.notes)
    assert np.array_equal(cartoonizer(path, CartoonConfig(resolution=RES), style_weight=0.0),
                          cartoonizer(path, resolution=RES, style_weight=0.0))
    with pytest.raises(ConfigError, match="unknown setting.*colour"):
        cartoonizer(path, colour="red")
    with pytest.raises(ConfigError, match="upscale=3.0"):
        cartoonizer(path, upscale=3.0)


def test_the_chain_times_faces_as_their_own_stages(cartoonizer, shared_images, tmp_path):
    result = cartoonizer.process(read_image(shared_images / "wb_party7.jpg"),
                                 CartoonConfig(mode="compound", resolution=RES, face_size=128))
    stages = {"preprocess", "network", "detect", "align", "head_network", "paste", "postprocess"}
    assert stages <= set(result.timings)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "party.jpg").write_bytes((shared_images / "wb_party7.jpg").read_bytes())
    report = run_folder(tmp_path / "in", tmp_path / "out", CartoonConfig(mode="compound", resolution=RES,
                                                                          face_size=128),
                        cartoonizer=cartoonizer, progress=False)
    assert report.done == 1 and report.seconds["faces"] > 0 and report.seconds["network"] > 0
    assert any(name.endswith("party.jpg") and "face(s)" in note for name, note in report.notes)  # now reported


class _NoFaces:
    def detect(self, rgb):
        from cartoonkit.faces import DetectionResult

        return DetectionResult(faces=[], skipped_small=0, skipped_low_score=0)


def test_cartoonizer_is_composed_of_parts(cartoonizer, shared_images):
    from cartoonkit import Cartoonizer

    made = []

    def head_factory():
        made.append(True)
        return cartoonizer.engine

    ck = Cartoonizer(cartoonizer.engine, head_engine=head_factory, face_detector=_NoFaces(),
                     model_card=cartoonizer.model_card)
    decoded = read_image(shared_images / "wb_actress2.jpg")
    full = ck.process(decoded, CartoonConfig(resolution=RES))
    assert not made  # the head engine is only made for a compound photo
    compound = ck.process(decoded, CartoonConfig(resolution=RES, mode="compound"))
    assert made == [True] and any("no face found" in note for note in compound.notes)
    assert torch.equal(full.rgb, compound.rgb)  # no face: the plain result
    assert torch.equal(full.rgb, cartoonizer.process(decoded, CartoonConfig(resolution=RES)).rgb)


# --------------------------------------------------------------------------- start-up


def test_the_command_line_parses_without_importing_torch():
    code = ("import sys; from cartoonkit.cli import build_parser; build_parser().parse_args(['run', 'x.jpg']); "
            "import cartoonkit; heavy = [m for m in ('torch', 'torchvision', 'PIL', 'cv2', 'numpy') "
            "if m in sys.modules]; print(heavy); sys.exit(1 if heavy else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_an_eager_run_never_imports_dynamo(tmp_path, shared_images, models_dir):
    """``torch.compiler.disable`` imports dynamo (seconds of start-up); only an engine that compiles may pay it."""
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jpg").write_bytes((shared_images / "wb_actress2.jpg").read_bytes())
    code = ("import sys; from cartoonkit.folder import run_folder; "
            f"report = run_folder({str(tmp_path / 'in')!r}, {str(tmp_path / 'out')!r}, resolution=256, "
            "progress=False); assert report.done == 1; print('torch._dynamo' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "False", done.stdout + done.stderr


def test_the_filter_kept_eager_under_compile_is_the_same_filter():
    from cartoonkit.network import CartoonNetwork

    torch.manual_seed(0)
    network = CartoonNetwork(channels=8, num_blocks=1).eval()
    x = torch.rand(1, 3, 32, 48) * 2 - 1
    with torch.inference_mode():
        before = network(x)
        network.filter_eagerly_when_compiled()
        assert torch.equal(network(x), before)
