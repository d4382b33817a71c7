"""How a pruning method declares itself, and what is done with a method's config.

A method is one module. It declares its surgery function with its config class in one line::

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

`register` keeps no table: it attaches the `Method` to the function and to the config class,
so everything here finds a config's method from the config itself (`method_of`). The methods by
*name* are `bench.registry.METHODS` (a `fitting.registry.Registry`; `pruners` imports nothing of
`bench`), whose discovery imports every module of the `pruners` package (dropping a module in
adds its method, like the laws in `fitting.laws`), then the modules named by the Python entry
points of group ``prunebench.pruners`` (how a separate package adds one:
``[project.entry-points."prunebench.pruners"] toy = "toy_method"``), then the modules listed,
comma-separated, in ``$PRUNEBENCH_PLUGINS``, and collects what each declares (`declared`). A
name declared twice is refused there, and an unknown name gets a did-you-mean.
"""

from __future__ import annotations

import dataclasses
import types
from dataclasses import dataclass
from typing import Callable

from pruners.errors import PrunerError, did_you_mean
from pruners.options import Option, options

ATTR = "prunebench_method"  # the attribute of a declared function and config class holding its Method
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

    def make_config(self, **fields):
        """Build this method's config from keyword fields (the study-file keys).

        Unknown fields and values of the wrong type are a one-line PrunerError; the config's own
        ``__post_init__`` then validates the values.
        """
        by_name = {o.name: o for o in self.options}
        bad = sorted(set(fields) - set(by_name))
        if bad:
            raise PrunerError(f"method {self.name!r} has no option {bad[0]!r}{did_you_mean(bad[0], by_name)}; "
                              f"its options are {', '.join(sorted(by_name))}")
        for key, value in fields.items():
            by_name[key].check(value, f"method {self.name!r}")
        return self.config_cls(**fields)


def register(name: str, config_cls: type, check: Callable | None = None):
    """Decorator: declare `fn` as method `name`, configured by dataclass `config_cls`.

    `check(model, config)` validates a config against a model without changing it, so callers
    can refuse impossible requests before paying for calibration data. The config must be a
    dataclass with a ``ratio`` field (the harness passes every case's ratio) and help text on
    every field. A name another function declares too is refused when `bench.registry.METHODS`
    collects the second (a plugin clashing with a built-in, or two plugins with one name).

    Raises:
        TypeError: a malformed config class.
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
        summary = (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""
        method = Method(name, config_cls, fn, summary, check, opts)
        setattr(fn, ATTR, method)
        setattr(config_cls, ATTR, method)
        config_cls.method_name = name
        return fn

    return deco


def declared(module) -> list[Method]:
    """The methods `module` declares: its functions that `register` decorated."""
    found = []
    for value in vars(module).values():
        if isinstance(value, types.FunctionType):
            method = value.__dict__.get(ATTR)
            if isinstance(method, Method) and method.fn is value:
                found.append(method)
    return found


def method_of(config) -> Method:
    """The method whose config class `config` is an instance of (declared by `register`)."""
    method = getattr(type(config), ATTR, None)
    if not isinstance(method, Method):
        raise TypeError(f"{type(config).__name__} is not the config of a registered pruning method")
    return method


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
