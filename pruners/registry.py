"""The registry of pruning methods, and how methods are found.

A method is one module. It registers its surgery function with its config class in one line::

    @register("depth", DepthConfig, check=check_depth)
    def prune_depth(model, calibration, config) -> PruneReport: ...

and its config dataclass declares everything the harness needs to know about it, so no caller
special-cases a method by name:

* its options, with help text in field metadata (`pruners.options`): the CLI flags of
  ``prunebench prune`` and the keys of a study file's ``options`` table are generated from them;
* ``needs_calibration(self) -> bool``: whether this configuration draws calibration data
  (absent: never);
* ``calibration_shape``: the (samples, seq_len) its reference implementation calibrates with
  (absent: 128 x 512);
* optionally ``cli_extra`` and ``from_cli`` for flags that are not one field each (``--nm N:M``).

Whether post-training must keep masked weights at zero is declared by the method's report
(`PruneReport.keeps_masks` with `PruneReport.masks`).

Methods are discovered (`discover`), in this order: every module of the `pruners` package
(dropping a module in registers it, like the laws in `fitting.laws`); then the modules named by
the Python entry points of group ``prunebench.pruners`` (how a separate package adds one:
``[project.entry-points."prunebench.pruners"] toy = "toy_method"``); then the modules listed,
comma-separated, in ``$PRUNEBENCH_PLUGINS`` (for a module that is importable but not installed).
A name registered twice is refused; `get_method` answers an unknown name with did-you-mean.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import pkgutil
from dataclasses import dataclass
from importlib import metadata
from typing import Callable

from pruners.errors import PrunerError, did_you_mean
from pruners.options import Option, options

ENTRY_POINT_GROUP = "prunebench.pruners"
PLUGINS_ENV = "PRUNEBENCH_PLUGINS"
DEFAULT_SHAPE = (128, 512)  # (samples, seq_len) when a config declares none


@dataclass(frozen=True)
class Method:
    name: str
    config_cls: type
    fn: Callable  # (model, calibration, config) -> PruneReport
    summary: str
    check: Callable | None = None  # (model, config) -> None; raises PrunerError, changes nothing
    options: tuple[Option, ...] = ()

    @property
    def calibration_shape(self) -> tuple[int, int]:
        """(samples, seq_len) the method calibrates with unless told otherwise."""
        return tuple(getattr(self.config_cls, "calibration_shape", DEFAULT_SHAPE))

    def needs_calibration(self, config) -> bool:
        """Whether `config` (one of this method's configs) draws calibration data."""
        ask = getattr(config, "needs_calibration", None)
        return bool(ask()) if callable(ask) else False

    @property
    def module(self) -> str:
        return self.fn.__module__


_METHODS: dict[str, Method] = {}
_DISCOVERED = False


def register(name: str, config_cls: type, check: Callable | None = None):
    """Decorator: register `fn` as method `name`, configured by dataclass `config_cls`.

    `check(model, config)` validates a config against a model without changing it, so callers
    can refuse impossible requests before paying for calibration data. The config must be a
    dataclass with a ``ratio`` field (the harness passes every case's ratio) and help text on
    every field.

    Raises:
        TypeError: a malformed config class.
        PrunerError: `name` is already registered by another function (a plugin clashing with a
            built-in, or two plugins with one name).
    """
    if not name or not name.replace("_", "").replace("-", "").isalnum():
        raise TypeError(f"pruning method name {name!r} must be letters, digits, '-' or '_'")
    if not dataclasses.is_dataclass(config_cls):
        raise TypeError(f"config for method {name!r} must be a dataclass, got {config_cls!r}")
    opts = tuple(options(config_cls))
    if "ratio" not in {o.name for o in opts}:
        raise TypeError(f"config {config_cls.__name__} of method {name!r} needs a 'ratio' field "
                        "(every case passes its pruning ratio)")

    def deco(fn: Callable) -> Callable:
        old = _METHODS.get(name)
        if old is not None and (old.fn.__module__, old.fn.__qualname__) != (fn.__module__, fn.__qualname__):
            raise PrunerError(f"pruning method {name!r} of {fn.__module__} is already registered by "
                             f"{old.module}; rename one of them or uninstall one plugin")
        summary = (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""
        _METHODS[name] = Method(name, config_cls, fn, summary, check, opts)
        config_cls.method_name = name
        return fn

    return deco


def discover() -> None:
    """Import the built-in method modules, the entry points and ``$PRUNEBENCH_PLUGINS`` (once)."""
    global _DISCOVERED
    if _DISCOVERED:
        return
    _DISCOVERED = True  # set first: the modules imported below import this one
    try:
        import pruners

        for mod in pkgutil.iter_modules(pruners.__path__):
            if not mod.name.startswith("_"):  # helper modules import harmlessly: nothing registers
                importlib.import_module(f"pruners.{mod.name}")
        for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            _load_plugin(ep.value.split(":")[0], f"entry point {ep.name!r} ({ENTRY_POINT_GROUP})", ep.name)
        for module in filter(None, (m.strip() for m in os.environ.get(PLUGINS_ENV, "").split(","))):
            _load_plugin(module, f"${PLUGINS_ENV}")
    except BaseException:
        _DISCOVERED = False  # a fixed environment may retry
        raise


def _load_plugin(module: str, where: str, expect: str | None = None) -> None:
    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise PrunerError(f"{where} names module {module!r}, which cannot be imported ({exc}); "
                         "install it or fix the name") from None
    if expect is not None and expect not in _METHODS:
        raise PrunerError(f"{where}: module {module!r} registered no pruning method named {expect!r}; "
                         "the entry point's name must be the method's name")


def known_methods() -> list[str]:
    discover()
    return sorted(_METHODS)


def methods() -> list[Method]:
    """Every registered method, sorted by name."""
    discover()
    return [_METHODS[n] for n in sorted(_METHODS)]


def get_method(name: str) -> Method:
    discover()
    if name not in _METHODS:
        known = sorted(_METHODS)
        raise PrunerError(f"unknown pruning method {name!r}{did_you_mean(name, known)}; "
                         f"choose one of {', '.join(known)}")
    return _METHODS[name]


def make_config(name: str, **fields):
    """Build method `name`'s config from keyword fields (the study-file keys).

    Unknown fields and values of the wrong type are a one-line PrunerError; the config's own
    ``__post_init__`` then validates the values.
    """
    m = get_method(name)
    by_name = {o.name: o for o in m.options}
    bad = sorted(set(fields) - set(by_name))
    if bad:
        raise PrunerError(f"method {name!r} has no option {bad[0]!r}{did_you_mean(bad[0], by_name)}; "
                         f"its options are {', '.join(sorted(by_name))}")
    for key, value in fields.items():
        by_name[key].check(value, f"method {name!r}")
    return m.config_cls(**fields)


def method_of(config) -> Method:
    """The registered method whose config class `config` is an instance of."""
    discover()
    for m in _METHODS.values():
        if isinstance(config, m.config_cls):
            return m
    raise TypeError(f"{type(config).__name__} is not the config of a registered pruning method")


def needs_calibration(config) -> bool:
    """Whether pruning with `config` draws calibration data, as its method declares."""
    return method_of(config).needs_calibration(config)


def validate(model, config) -> None:
    """Raise the PrunerError `prune` would raise for this model, without changing anything."""
    m = method_of(config)
    if m.check is not None:
        m.check(model, config)


def prune(model, calibration, config):
    """Run the surgery that `config` configures; returns its `PruneReport`."""
    report = method_of(config).fn(model, calibration, config)
    if report.keeps_masks and not report.masks:
        raise TypeError(f"method {report.method!r} says its report keeps masks, but it carries none")
    return report
