"""One declaration per user setting; validation, CLI flags, dashboard widgets and the resume fingerprint
are all generated from it.

A setting is a dataclass field whose metadata holds a :class:`Setting`::

    style_weight: float = setting(0.75, float, "0 = photo, 1 = full cartoon", low=0.0, high=1.0,
                                  widget=Widget("slider", "Style weight", step=0.05))

Four objects are declared this way: :class:`~cartoonkit.config.CartoonConfig` (the picture),
:class:`~cartoonkit.options.EngineOptions` (how the network runs), and the options of a run,
:class:`~cartoonkit.run_options.FolderOptions` and :class:`~cartoonkit.run_options.VideoOptions`. Adding a
setting to any of them is that one edit (plus the code that gives it its effect): the command line's flags,
the dashboard's widgets, the API's keyword arguments and the folder runner's settings fingerprint pick it up
from here. No torch in this module: the command line parses its arguments with it before anything heavy is
imported.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError

_NUMBER_KINDS = {float: numbers.Real, int: numbers.Integral}
_KIND_WORDS = {float: "a number", int: "an integer"}


@dataclass(frozen=True)
class Widget:
    """How the dashboard shows a setting.

    kind: ``slider``, ``select`` (a drop-down), ``radio``, ``select_slider`` or ``checkbox``; ``options``: the
    values offered (for ``select``, ``radio`` and ``select_slider``; default: the setting's ``choices``; a
    function where they depend on the machine); ``step``: a slider's step; ``section``: the sidebar expander it
    sits in (``None``: the sidebar itself); ``enabled_when``: a predicate over the other widgets' current values
    (a dict by setting name), e.g. quality only for JPEG/WEBP; ``value``: where the page starts when that
    differs from the declared default (the Video page measures flicker unless told not to); ``format``: how a
    choice is shown (``None`` as "auto ...").
    """

    kind: str
    label: str
    options: tuple | Callable[[], tuple] | None = None
    step: float | None = None
    section: str | None = None
    enabled_when: Callable[[dict[str, Any]], bool] | None = None
    value: Any = None
    format: Callable[[Any], str] | None = None


@dataclass(frozen=True)
class Setting:
    """What a setting means and takes.

    kind: ``float``, ``int``, ``str`` or ``bool``; ``low``/``high``: an inclusive range (either may be left
    open); ``choices``: the allowed values; ``multiple_of``: for sizes; ``normalise``: a function that validates
    and canonicalises a value (``"JPEG"`` -> ``"jpg"``) instead of ``choices``; ``flag_choices``: what the CLI
    flag accepts when that differs from ``choices`` (aliases); ``optional``: ``None`` is allowed too, meaning a
    default that depends on where the work runs (the batch size: 8 on CUDA, 1 on the CPU), which the help text
    then names itself; ``metavar``: the flag's value in ``--help``; ``widget``: the dashboard's widget, ``None``
    for none; ``affects_output``: whether, given the whole config, this setting changes an output's bytes (the
    quality of a PNG does not), for the resume fingerprint; ``fingerprint``: ``False`` for settings that never
    change an output (the device); ``cli``: ``False`` for switches only the API and the benchmark set.
    """

    kind: type
    help: str
    low: float | None = None
    high: float | None = None
    choices: tuple | None = None
    multiple_of: int | None = None
    normalise: Callable[[Any], Any] | None = None
    flag_choices: tuple | None = None
    widget: Widget | None = None
    affects_output: Callable[[Any], bool] | None = None
    fingerprint: bool = True
    cli: bool = True
    optional: bool = False
    metavar: str | None = None

    def check(self, name: str, value: Any) -> Any:
        """``value`` cast to ``kind`` (numpy scalars and ints for floats are accepted, bools never),
        or :class:`ConfigError` naming the setting, the value and what is allowed."""
        if value is None and self.optional:
            return None
        if self.normalise is not None:
            return self.normalise(value)
        if self.kind in _NUMBER_KINDS:
            if isinstance(value, bool) or not isinstance(value, _NUMBER_KINDS[self.kind]):
                if self.choices is not None:
                    raise ConfigError(f"{name}={value!r}: allowed {_listed(self.choices)}")
                raise ConfigError(f"{name}={value!r}: must be {_KIND_WORDS[self.kind]}{self._range_words()}")
            value = self.kind(value)
        elif self.kind is bool:
            if not isinstance(value, bool):
                raise ConfigError(f"{name}={value!r}: must be True or False")
        elif not isinstance(value, self.kind):
            raise ConfigError(f"{name}={value!r}: must be a {self.kind.__name__}")
        if self.choices is not None and value not in self.choices:
            raise ConfigError(f"{name}={value!r}: unknown, allowed {_listed(self.choices)}")
        if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
            raise ConfigError(f"{name}={value!r}: out of range, allowed{self._range_words()}")
        if self.multiple_of and value % self.multiple_of:
            raise ConfigError(f"{name}={value!r}: must be a multiple of {self.multiple_of}")
        return value

    def _range_words(self) -> str:
        if self.low is not None and self.high is not None:
            return f" from {self.low} to {self.high}" if self.kind is int else f" between {self.low} and {self.high}"
        if self.low is not None:
            return f" of at least {self.low}"
        return f" of at most {self.high}" if self.high is not None else ""


def setting(default: Any, kind: type, help: str, **options) -> Any:
    """A dataclass field declared as a user setting (see :class:`Setting` for ``options``); a setting whose
    default is ``None`` is optional."""
    options.setdefault("optional", default is None)
    return dataclasses.field(default=default, metadata={"setting": Setting(kind, help, **options)})


def declared(cls_or_instance) -> dict[str, tuple[Setting, Any]]:
    """``{name: (Setting, default)}`` of every declared setting of a dataclass, in declaration order."""
    return {f.name: (f.metadata["setting"], f.default) for f in dataclasses.fields(cls_or_instance)
            if "setting" in f.metadata}


def validate(instance) -> None:
    """Check and canonicalise every declared setting of a frozen dataclass, in declaration order
    (for its ``__post_init__``)."""
    for name, (spec, _) in declared(instance).items():
        object.__setattr__(instance, name, spec.check(name, getattr(instance, name)))


def fingerprint_values(instance) -> dict[str, Any]:
    """The settings that decide an output's bytes, by name; those that do not matter here are ``None``
    (so that a resumed run compares the same keys)."""
    values = {}
    for name, (spec, _) in declared(instance).items():
        if not spec.fingerprint:
            continue
        relevant = spec.affects_output is None or spec.affects_output(instance)
        values[name] = getattr(instance, name) if relevant else None
    return values


def flag(name: str) -> str:
    """``style_weight`` -> ``--style-weight``."""
    return "--" + name.replace("_", "-")


def add_arguments(parser, cls, *, skip: tuple[str, ...] = (), only: tuple[str, ...] | None = None) -> None:
    """One ``argparse`` option per declared setting of ``cls`` (those in ``only``, if given), with its default,
    choices and help. A switch that is off by default is ``--name``; one that is on, ``--no-name``. An
    optional setting's help names its own default (it depends on the device)."""
    for name, (spec, default) in declared(cls).items():
        if name in skip or not spec.cli or (only is not None and name not in only):
            continue
        if spec.kind is bool:
            parser.add_argument(flag(name if not default else f"no_{name}"), dest=name, default=default,
                                action="store_false" if default else "store_true", help=spec.help)
            continue
        shown = f"{default:g}" if isinstance(default, float) else default
        parser.add_argument(flag(name), type=spec.kind, default=default, dest=name, metavar=spec.metavar,
                            choices=spec.flag_choices or spec.choices,
                            help=spec.help if default is None else f"{spec.help} (default {shown})")


def from_arguments(cls, args, **extra):
    """An instance of ``cls`` from parsed arguments (see :func:`add_arguments`); ``extra`` overrides."""
    values = {name: getattr(args, name) for name in declared(cls) if hasattr(args, name)}
    return cls(**{**values, **extra})


def with_changes(instance, changes: dict[str, Any]):
    """``dataclasses.replace`` that names an unknown setting in a :class:`ConfigError` (not a ``TypeError``)."""
    unknown = sorted(set(changes) - set(declared(instance)))
    if unknown:
        raise ConfigError(f"unknown setting(s) {', '.join(unknown)}; settings are {', '.join(declared(instance))}")
    return dataclasses.replace(instance, **changes)


def apply_changes(changes: dict[str, Any], *instances) -> tuple:
    """``instances`` with ``changes`` given by flat setting name (``resolution=512, batch_size=4``), each applied
    to the one object that declares it; an unknown name raises a :class:`ConfigError` naming the settings
    there are. What the API's ``**settings`` keyword arguments go through."""
    names = {name: index for index, instance in reversed(list(enumerate(instances))) for name in declared(instance)}
    unknown = sorted(set(changes) - set(names))
    if unknown:
        raise ConfigError(f"unknown setting(s) {', '.join(unknown)}; settings are {', '.join(names)}")
    return tuple(dataclasses.replace(instance, **{k: v for k, v in changes.items() if names[k] == index})
                 if any(names[k] == index for k in changes) else instance
                 for index, instance in enumerate(instances))


def _listed(values) -> str:
    return ", ".join(map(str, values))
