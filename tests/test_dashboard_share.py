"""Shareable settings: the sidebar settings in the URL, and a link's settings back in the sidebar."""

from __future__ import annotations

import pytest

from cartoonkit import paths
from cartoonkit.dashboard import share
from cartoonkit.errors import ConfigError

st_testing = pytest.importorskip("streamlit.testing.v1")
APP = str(paths.project_root() / "streamlit_app.py")


def _app(query: dict | None = None):
    at = st_testing.AppTest.from_file(APP, default_timeout=60)
    for name, value in (query or {}).items():
        at.query_params[name] = value
    return at.run()


def _params(at) -> dict:
    return {k: (v[0] if isinstance(v, list) else v) for k, v in at.query_params.items()}


def test_a_link_opens_the_dashboard_with_its_settings(models_dir):
    at = _app({"resolution": "512", "mode": "compound", "style_weight": "0.6", "precision": "float32"})
    assert not at.exception and not at.warning
    settings = at.session_state["sidebar_settings"]
    assert (settings.config.resolution, settings.config.mode, settings.config.style_weight) == (512, "compound", 0.6)
    assert settings.engine_options.precision == "float32"
    assert at.sidebar.selectbox(key="resolution").value == 512
    assert _params(at) == {"resolution": "512", "mode": "compound", "style_weight": "0.6", "precision": "float32"}


def test_changing_a_setting_updates_the_link_and_defaults_leave_it(models_dir):
    at = _app()
    assert _params(at) == {}                                  # the defaults: a bare URL
    at.sidebar.selectbox(key="resolution").select(768).run()
    at.sidebar.slider(key="style_weight").set_value(0.8).run()
    assert _params(at) == {"resolution": "768", "style_weight": "0.8"}
    at.sidebar.selectbox(key="resolution").select(1024).run()  # back to the default
    assert _params(at) == {"style_weight": "0.8"}


def test_bad_link_values_are_named_and_ignored_and_other_parameters_kept(models_dir):
    at = _app({"resolution": "big", "mode": "sideways", "model": "not-installed", "utm_source": "mail",
               "beautify": "0.5"})
    assert not at.exception
    warnings = " ".join(w.value for w in at.warning)
    assert "resolution='big'" in warnings and "mode='sideways'" in warnings and "not-installed" in warnings
    settings = at.session_state["sidebar_settings"]
    assert (settings.config.resolution, settings.config.mode, settings.config.beautify) == (1024, "full", 0.5)
    assert _params(at) == {"beautify": "0.5", "utm_source": "mail"}


@pytest.mark.parametrize("name,raw,expected", [("resolution", "768", 768), ("style_weight", "0.25", 0.25),
                                                ("format", "JPEG", "jpg"), ("denoise", "3", 3)])
def test_parse_checks_values_as_the_settings_do(name, raw, expected):
    spec, _ = share.linked_settings()[name]
    assert share.parse(name, spec, raw) == expected


@pytest.mark.parametrize("name,raw", [("resolution", "300"), ("style_weight", "7"), ("quality", "x"),
                                      ("denoise", "4")])
def test_parse_refuses_what_the_dashboard_does_not_offer(name, raw):
    spec, _ = share.linked_settings()[name]
    with pytest.raises(ConfigError, match=name):
        share.parse(name, spec, raw)
