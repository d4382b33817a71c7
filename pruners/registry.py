"""The registry of pruning methods.

Each method module registers its surgery function with its config class in one line::

    @register("depth", DepthConfig)
    def prune_depth(model, calibration, config) -> PruneReport: ...

`get_method(name)` answers an unknown name with the known ones and a did-you-mean hint;
`make_config(name, **fields)` builds (and so validates) a method's config; `prune` runs the
surgery a config belongs to.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

from bench.errors import UsageError, did_you_mean


@dataclass(frozen=True)
class Method:
    name: str
    config_cls: type
    fn: Callable  # (model, calibration, config) -> PruneReport
    summary: str
    check: Callable | None = None  # (model, config) -> None; raises UsageError, changes nothing


_METHODS: dict[str, Method] = {}


def register(name: str, config_cls: type, check: Callable | None = None):
    """Decorator: register `fn` as method `name`, configured by dataclass `config_cls`.

    `check(model, config)` validates a config against a model without changing it, so callers
    can refuse impossible requests before paying for calibration data.
    """
    if not dataclasses.is_dataclass(config_cls):
        raise TypeError(f"config for method {name!r} must be a dataclass, got {config_cls!r}")

    def deco(fn: Callable) -> Callable:
        if name in _METHODS and _METHODS[name].fn is not fn:
            raise ValueError(f"pruning method {name!r} is already registered by {_METHODS[name].fn!r}")
        summary = (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""
        _METHODS[name] = Method(name, config_cls, fn, summary, check)
        config_cls.method_name = name
        return fn

    return deco


def _load_builtin() -> None:
    # Importing the modules runs their @register lines.
    from pruners import blockwise, depth, nm, width  # noqa: F401


def known_methods() -> list[str]:
    _load_builtin()
    return sorted(_METHODS)


def get_method(name: str) -> Method:
    _load_builtin()
    if name not in _METHODS:
        known = sorted(_METHODS)
        raise UsageError(f"unknown pruning method {name!r}{did_you_mean(name, known)}; "
                         f"choose one of {', '.join(known)}")
    return _METHODS[name]


def make_config(name: str, **fields):
    """Build method `name`'s config from keyword fields (unknown fields are a UsageError)."""
    cls = get_method(name).config_cls
    allowed = {f.name for f in dataclasses.fields(cls) if f.init}
    bad = sorted(set(fields) - allowed)
    if bad:
        raise UsageError(f"method {name!r} has no option {bad[0]!r}{did_you_mean(bad[0], allowed)}; "
                         f"its options are {', '.join(sorted(allowed))}")
    return cls(**fields)


def _method_of(config) -> Method:
    _load_builtin()
    for m in _METHODS.values():
        if isinstance(config, m.config_cls):
            return m
    raise TypeError(f"{type(config).__name__} is not the config of a registered pruning method")


def validate(model, config) -> None:
    """Raise the UsageError `prune` would raise for this model, without changing anything."""
    m = _method_of(config)
    if m.check is not None:
        m.check(model, config)


def prune(model, calibration, config):
    """Run the surgery that `config` configures; returns its `PruneReport`."""
    return _method_of(config).fn(model, calibration, config)
