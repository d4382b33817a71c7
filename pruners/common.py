"""Validation helpers shared by the method configs (each raises a one-line `PrunerError`)."""

from __future__ import annotations

import math
from typing import ClassVar

from pruners.errors import PrunerError, did_you_mean


def check_ratio(ratio, what: str = "--ratio") -> float:
    """A pruning ratio: a number in [0, 1)."""
    try:
        r = float(ratio)
    except (TypeError, ValueError):
        raise PrunerError(f"{what} must be a number in [0, 1), got {ratio!r}") from None
    if not math.isfinite(r) or not 0.0 <= r < 1.0:
        raise PrunerError(f"{what} must be in [0, 1) (the fraction to remove), got {ratio}")
    return r


def check_choice(value, choices, what: str) -> str:
    if value not in choices:
        raise PrunerError(f"unknown {what} {value!r}{did_you_mean(value, choices)}; "
                         f"choose one of {', '.join(choices)}")
    return value


def check_positive_int(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise PrunerError(f"{what} must be a positive integer, got {value!r}")
    return value


def parse_range(value, what: str = "--layers") -> tuple[int, int] | None:
    """'START:END' (end exclusive), a (start, end) pair, or None."""
    if value is None:
        return None
    if isinstance(value, str):
        parts = value.split(":")
        try:
            if len(parts) != 2:
                raise ValueError
            start, end = int(parts[0]), int(parts[1])
        except ValueError:
            raise PrunerError(f"{what} must look like START:END (end exclusive), got {value!r}") from None
    else:
        try:
            start, end = (int(x) for x in value)
        except (TypeError, ValueError):
            raise PrunerError(f"{what} must be a (start, end) pair, got {value!r}") from None
    if start < 0 or end < start:
        raise PrunerError(f"{what} {start}:{end} is not a range: need 0 <= START <= END")
    return (start, end)


def check_range_in_model(rng: tuple[int, int] | None, n_layers: int, what: str = "--layers") -> None:
    if rng is not None and rng[1] > n_layers:
        raise PrunerError(f"{what} {rng[0]}:{rng[1]} is outside the model, which has {n_layers} layers "
                         f"(valid: 0 <= START <= END <= {n_layers})")


def normalise(config, **values) -> None:
    """Set fields of a frozen config from its own ``__post_init__`` (a ratio given as an int
    becomes a float, a layer range given as "4:30" a pair), so every config a method receives
    holds its values in one canonical form and can be compared and hashed."""
    for name, value in values.items():
        object.__setattr__(config, name, value)


class RatioConfig:
    """What the depth and width configs share: 128 x 512 calibration samples whenever they prune,
    and the same checks of their ratio, choice options and batch size.

    A subclass is a dataclass with ``ratio`` and ``batch_size`` fields; ``CHOICES`` names its
    choice options as (field, allowed values, what an error calls the option).
    """

    calibration_shape: ClassVar[tuple[int, int]] = (128, 512)
    CHOICES: ClassVar[tuple[tuple[str, tuple, str], ...]] = ()

    def needs_calibration(self) -> bool:
        return self.ratio > 0

    def __post_init__(self):
        normalise(self, ratio=check_ratio(self.ratio))
        for name, choices, what in self.CHOICES:
            check_choice(getattr(self, name), choices, what)
        check_positive_int(self.batch_size, "batch_size")
