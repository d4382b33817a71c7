"""Runs: the unit of data the fit, the bootstrap and the protocols work on.

A *run* is one loss curve: one model x method x ratio post-trained over time, with a loss at
each checkpoint. Bootstrap resampling draws whole runs (checkpoints of one run are
autocorrelated), the within-run protocol splits each run in time, and the extrapolation protocol
holds out whole groups of runs (one base model size/family each).

For data without time structure (Chinchilla's final losses) every point is its own run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from fitting.errors import FitError
from fitting.laws.base import TOKENS


@dataclass(frozen=True)
class Run:
    """One loss curve.

    Args:
        run_id: unique name of the run (e.g. "llama-3.2-1b/depth/0.25").
        group: base model key (size/family) the extrapolation protocol selects on.
        inputs: per-run constants of the law (N0, rho, L0, N, ...) as floats, or arrays with one
            value per checkpoint. The token axis `D` is never in here: it is `tokens`.
        tokens: tokens seen at each checkpoint, raw count (> 0).
        loss: loss at each checkpoint (> 0).

    Checkpoints are stored sorted by tokens, i.e. in time order.
    """

    run_id: str
    group: str
    inputs: Mapping[str, float | np.ndarray]
    tokens: np.ndarray
    loss: np.ndarray
    n_checkpoints: int = field(init=False)

    def __post_init__(self):
        tokens = np.atleast_1d(np.asarray(self.tokens, dtype=float))
        loss = np.atleast_1d(np.asarray(self.loss, dtype=float))
        if tokens.ndim != 1 or tokens.shape != loss.shape:
            raise FitError(
                f"run {self.run_id!r}: tokens and loss must be 1-D of equal length, "
                f"got {tokens.shape} and {loss.shape}"
            )
        if tokens.size == 0:
            raise FitError(f"run {self.run_id!r} has no checkpoints")
        for what, v in (("token counts", tokens), ("losses", loss)):
            bad = ~np.isfinite(v) | (v <= 0)
            if bad.any():
                raise FitError(
                    f"run {self.run_id!r} has non-positive or non-finite {what} "
                    f"(first bad value {v[bad][0]!r}); every value must be > 0"
                )
        if TOKENS in self.inputs:
            raise FitError(f"run {self.run_id!r}: pass the token axis as `tokens`, not inputs[{TOKENS!r}]")
        order = np.argsort(tokens, kind="stable")
        inputs = {}
        for name, v in self.inputs.items():
            arr = np.asarray(v, dtype=float)
            if arr.ndim == 0:
                inputs[name] = float(arr)
            elif arr.shape == tokens.shape:
                inputs[name] = arr[order]
            else:
                raise FitError(
                    f"run {self.run_id!r}: input {name!r} must be a number or have one value "
                    f"per checkpoint ({tokens.size}), got shape {arr.shape}"
                )
        object.__setattr__(self, "run_id", str(self.run_id))
        object.__setattr__(self, "group", str(self.group))
        object.__setattr__(self, "inputs", inputs)
        object.__setattr__(self, "tokens", tokens[order])
        object.__setattr__(self, "loss", loss[order])
        object.__setattr__(self, "n_checkpoints", int(tokens.size))

    def to_dict(self) -> dict:
        """Plain JSON (a fit.json group keeps its runs this way, so a report redraws them)."""
        return {"run": self.run_id, "size": self.group, "tokens": self.tokens.tolist(), "loss": self.loss.tolist(),
                "inputs": {k: (v.tolist() if isinstance(v, np.ndarray) else float(v)) for k, v in self.inputs.items()}}

    @classmethod
    def from_dict(cls, d: Mapping) -> "Run":
        """A run back from `to_dict`."""
        try:
            return cls(d["run"], d["size"], dict(d["inputs"]), d["tokens"], d["loss"])
        except (KeyError, TypeError) as exc:
            raise FitError(f"stored run lacks {exc}; it must hold run, size, inputs, tokens and loss") from None

    def column(self, name: str) -> np.ndarray:
        """Input `name` at every checkpoint (raw units); `D` is the token axis."""
        if name == TOKENS:
            return self.tokens
        try:
            v = self.inputs[name]
        except KeyError:
            raise FitError(
                f"run {self.run_id!r} has no input {name!r}; it has {sorted(self.inputs) + [TOKENS]}"
            ) from None
        return np.broadcast_to(np.asarray(v, dtype=float), self.tokens.shape)

    def select(self, index: np.ndarray) -> "Run":
        """A run with only the checkpoints at `index` (e.g. the first 80%)."""
        inputs = {k: (v if np.ndim(v) == 0 else np.asarray(v)[index]) for k, v in self.inputs.items()}
        return Run(self.run_id, self.group, inputs, self.tokens[index], self.loss[index])


@dataclass(frozen=True)
class Points:
    """Runs flattened for the fit: one row per checkpoint.

    Attributes:
        x: input name -> (n,) raw values, for the inputs the law needs.
        loss: (n,) observed loss.
        run: (n,) index of each point's run in the list that was stacked.
    """

    x: dict[str, np.ndarray]
    loss: np.ndarray
    run: np.ndarray

    @property
    def n(self) -> int:
        return int(self.loss.size)


def stack(runs: Sequence[Run], inputs: Sequence[str]) -> Points:
    """Flatten `runs` into `Points` holding the columns `inputs`.

    Raises:
        FitError: no runs, or a run lacks one of `inputs`.
    """
    runs = list(runs)
    if not runs:
        raise FitError("no runs to fit: the data selection is empty")
    x = {name: np.concatenate([r.column(name) for r in runs]) for name in inputs}
    loss = np.concatenate([r.loss for r in runs])
    run = np.concatenate([np.full(r.n_checkpoints, i) for i, r in enumerate(runs)])
    return Points(x=x, loss=loss, run=run)


def runs_from_table(
    columns: Mapping[str, np.ndarray],
    inputs: Mapping[str, str],
    loss: str,
    run_column: str | None = None,
) -> list[Run]:
    """Build runs from a table of points (e.g. a CSV read into columns).

    Args:
        columns: column name -> (n,) values.
        inputs: law input name -> column name (must include the token axis `D`).
        loss: name of the loss column.
        run_column: column whose value names each point's run (and its group). Without it every
            row is its own run, as for Chinchilla's final losses.
    """
    if TOKENS not in inputs:
        raise FitError(f"the table needs a column for the token axis {TOKENS!r}")
    for col in list(inputs.values()) + [loss] + ([run_column] if run_column else []):
        if col not in columns:
            raise FitError(f"no column {col!r} in the table; it has {sorted(columns)}")
    n = len(np.asarray(columns[loss]))
    if n == 0:
        raise FitError("the table has no rows")
    ids = np.asarray(columns[run_column]).astype(str) if run_column else np.arange(n).astype(str)
    runs = []
    for rid in dict.fromkeys(ids):  # first-appearance order
        idx = np.flatnonzero(ids == rid)
        vals = {k: np.asarray(columns[c], dtype=float)[idx] for k, c in inputs.items()}
        tokens = vals.pop(TOKENS)
        runs.append(Run(rid, rid, vals, tokens, np.asarray(columns[loss], dtype=float)[idx]))
    return runs
