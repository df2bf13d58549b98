"""Shareable settings: the sidebar's settings in the page URL (``st.query_params``), so a link opens the dashboard
with the same settings.

Only settings that differ from their defaults go into the URL (``?resolution=512&mode=compound``), so a link stays
short and a default that changes later reaches old links. A link's values pass through the same declarations as
every other way in (:mod:`cartoonkit.settings`): a value a setting would refuse is left out with a warning naming
it, never applied and never an exception. Query parameters that are not settings (anything else in the URL) are
left alone.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any

from .. import settings as declarations
from ..config import CartoonConfig
from ..errors import ConfigError
from ..options import EngineOptions

APPLIED_KEY = "link_settings_applied"   # session_state: the link was read once in this session
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def linked_settings() -> dict[str, tuple[declarations.Setting, Any]]:
    """``{name: (Setting, default)}`` of the settings a link may carry: every one with a sidebar widget."""
    return {name: declared for cls in (CartoonConfig, EngineOptions)
            for name, declared in declarations.declared(cls).items() if declared[0].widget is not None}


def parse(name: str, spec: declarations.Setting, raw: str) -> Any:
    """The URL text ``raw`` as a value of setting ``name``, checked as the setting checks it; ConfigError if not."""
    try:
        if spec.kind is bool:
            if raw.strip().lower() not in _TRUE + _FALSE:
                raise ValueError("not a yes/no value")
            value: Any = raw.strip().lower() in _TRUE
        elif spec.kind is int:
            value = int(raw)
        elif spec.kind is float:
            value = float(raw)
        else:
            value = raw
    except ValueError as exc:
        raise ConfigError(f"{name}={raw!r}: {exc}") from exc
    value = spec.check(name, value)
    options = spec.widget.options() if callable(spec.widget.options) else (spec.widget.options or spec.choices)
    if spec.widget.kind != "slider" and options is not None and value not in options:
        raise ConfigError(f"{name}={raw!r}: the dashboard offers {', '.join(map(str, options))}")
    return value


def apply_link(query: Mapping[str, str], state: MutableMapping, models: list[str]) -> list[str]:
    """Once per session: seed the sidebar widgets' state from the link's settings (``model`` too, if installed).

    Returns a warning per value that was left out. Later runs do nothing: the widgets own their values then."""
    if state.get(APPLIED_KEY):
        return []
    state[APPLIED_KEY] = True
    problems = []
    for name, (spec, _) in linked_settings().items():
        if name in query:
            try:
                state[name] = parse(name, spec, str(query[name]))
            except ConfigError as exc:
                problems.append(f"The link's {exc} was ignored.")
    if "model" in query:
        if query["model"] in models:
            state["model"] = query["model"]
        else:
            problems.append(f"The link's model {query['model']!r} is not installed here; using {models[0]}.")
    return problems


def link_values(flat: Mapping[str, Any], default_model: str) -> dict[str, str]:
    """What the URL should hold for these settings (``Settings.flat()``): each one that differs from its default."""
    values = {name: _text(flat[name]) for name, (_, default) in linked_settings().items()
              if name in flat and flat[name] != default}
    if flat.get("model", default_model) != default_model:
        values["model"] = str(flat["model"])
    return values


def write_link(query: MutableMapping, flat: Mapping[str, Any], default_model: str) -> None:
    """Make the URL's setting parameters those of :func:`link_values`, touching no other parameter."""
    wanted = link_values(flat, default_model)
    for name in [*linked_settings(), "model"]:
        if name in wanted:
            if query.get(name) != wanted[name]:
                query[name] = wanted[name]
        elif name in query:
            del query[name]


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
