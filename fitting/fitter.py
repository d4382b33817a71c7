"""Fitting a law to runs: multi-start, log-space, summed-Huber, with units stored on the result."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from fitting.errors import FitError
from fitting._blas import one_blas_thread
from fitting.data import Points, Run, stack
from fitting.laws.base import Law, Unit, get_law
from fitting.multistart import Polished, distinct_best, polish, screen
from fitting.objective import HUBER_DELTA, Objective

#: How many of the best distinct screened endpoints are polished with scipy L-BFGS-B.
DEFAULT_POLISH = 5


@dataclass(frozen=True)
class FitResult:
    """A fitted law. Constants are never rounded.

    Attributes:
        law: name of the law form.
        params: fitted parameters by name, in the fit parameterisation (a = log A, ...).
        constants: the same fit in the formula's natural form (A, B, E, alpha, beta, ...).
        objective: summed Huber loss of log residuals at `params`.
        units: unit of every input; the constants are only meaningful with them.
        n_points, n_runs: how much data the fit saw.
        converged: the final polish reached an optimum (not an iteration limit or overflow).
        n_starts: how many initial values were tried.
        delta: the Huber threshold.
        message: the optimiser's final message.
    """

    law: str
    params: dict[str, float]
    constants: dict[str, float]
    objective: float
    units: dict[str, Unit]
    n_points: int
    n_runs: int
    converged: bool
    n_starts: int
    delta: float = HUBER_DELTA
    message: str = ""
    # The best distinct screened endpoints, kept as warm starts for bootstrap refits.
    candidates: np.ndarray = field(default=None, repr=False, compare=False)

    @property
    def theta(self) -> np.ndarray:
        """The parameter vector in the law's `params` order."""
        return np.array([self.params[p] for p in get_law(self.law).params])

    def scaled(self, x: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Raw inputs divided by the fit's units, broadcast to one common 1-D shape."""
        law = get_law(self.law)
        missing = [k for k in law.inputs if k not in x]
        if missing:
            raise FitError(f"law {self.law!r} needs inputs {list(law.inputs)}; missing {missing}")
        arrays = np.broadcast_arrays(*(np.atleast_1d(np.asarray(x[k], dtype=float)) for k in law.inputs))
        return {k: a.ravel() / self.units[k].scale for k, a in zip(law.inputs, arrays)}

    def predict(self, x: Mapping[str, np.ndarray]) -> np.ndarray:
        """Predicted loss at raw inputs `x` (input name -> number or array, raw units as fitted)."""
        return np.exp(get_law(self.law).log_predict(self.theta[None, :], self.scaled(x))[0])

    def predict_run(self, run: Run) -> np.ndarray:
        """Predicted loss at every checkpoint of `run`."""
        return self.predict({k: run.column(k) for k in get_law(self.law).inputs})

    @classmethod
    def from_dict(cls, d: Mapping, params: Mapping[str, float] | None = None) -> "FitResult":
        """A fit back from its `to_dict` form (e.g. a group of fit.json), to predict with.

        Args:
            d: the stored fit: law, params and units are what a prediction needs.
            params: other parameters to put in place of the stored ones (a bootstrap replicate).

        Raises:
            FitError: the dict lacks a field, names an unknown law, or its parameters or
                units do not match the law's.
        """
        try:
            law = get_law(d["law"])
            theta = dict(d["params"] if params is None else params)
            units = {k: Unit(u["quantity"], float(u["scale"])) for k, u in d["units"].items()}
        except (KeyError, TypeError) as exc:
            raise FitError(f"stored fit lacks {exc}; it must hold law, params and units") from None
        if set(theta) != set(law.params) or set(units) != set(law.inputs):
            raise FitError(f"stored fit does not match law {law.name!r}: params {sorted(theta)} "
                             f"(want {sorted(law.params)}), units {sorted(units)} (want {sorted(law.inputs)})")
        theta = {k: float(v) for k, v in theta.items()}
        return cls(law=law.name, params=theta, constants=law.constants(theta), objective=float(d.get("objective", "nan")),
                   units=units, n_points=int(d.get("n_points", 0)), n_runs=int(d.get("n_runs", 0)),
                   converged=bool(d.get("converged", False)), n_starts=int(d.get("n_starts", 0)),
                   delta=float(d.get("huber_delta", HUBER_DELTA)), message=str(d.get("message", "")))

    def to_dict(self) -> dict:
        """JSON-able form (plain floats, ints, strings)."""
        return {
            "law": self.law,
            "formula": get_law(self.law).describe(),
            "params": {k: float(v) for k, v in self.params.items()},
            "constants": {k: float(v) for k, v in self.constants.items()},
            "objective": float(self.objective),
            "huber_delta": float(self.delta),
            "units": {k: u.to_dict() for k, u in self.units.items()},
            "n_points": int(self.n_points),
            "n_runs": int(self.n_runs),
            "n_starts": int(self.n_starts),
            "converged": bool(self.converged),
            "message": self.message,
        }


def resolve_units(law: Law, units: Mapping[str, float | Unit] | None = None) -> dict[str, Unit]:
    """The law's default units with per-input overrides (a scale, or a full `Unit`)."""
    out = dict(law.units)
    for name, u in (units or {}).items():
        if name not in law.inputs:
            raise FitError(f"unit given for {name!r}, which law {law.name!r} has no input of; inputs: {list(law.inputs)}")
        out[name] = u if isinstance(u, Unit) else Unit(law.units[name].quantity, float(u))
    law.check_units(out)
    return out


def fit(
    runs: Sequence[Run],
    law: str | Law,
    *,
    units: Mapping[str, float | Unit] | None = None,
    grid: Mapping[str, Sequence[float]] | None = None,
    starts: np.ndarray | None = None,
    delta: float = HUBER_DELTA,
    n_polish: int = DEFAULT_POLISH,
) -> FitResult:
    """Fit `law` to `runs` by multi-start minimisation of the summed Huber loss of log residuals.

    Args:
        runs: the data; every checkpoint of every run is a point.
        law: a law name (see `available_laws()`) or instance.
        units: per-input unit scale overrides; defaults are the law's.
        grid: initial values per parameter, replacing the law's grid.
        starts: explicit (S, P) initial parameter vectors, replacing the grid.
        delta: Huber threshold.
        n_polish: how many of the best distinct screened endpoints to polish with scipy
            L-BFGS-B; 0 keeps the best screened endpoint as it is.

    Raises:
        FitError: fewer points than parameters, inputs the law cannot take, bad grid.
    """
    law = get_law(law)
    runs = list(runs)
    pts = stack(runs, law.inputs)
    return fit_points(pts, law, n_runs=len(runs), units=units, grid=grid, starts=starts,
                      delta=delta, n_polish=n_polish)


def fit_points(
    pts: Points,
    law: str | Law,
    *,
    n_runs: int,
    units=None,
    grid=None,
    starts: np.ndarray | None = None,
    delta: float = HUBER_DELTA,
    n_polish: int = DEFAULT_POLISH,
) -> FitResult:
    """`fit` on already stacked points (the bootstrap calls this once per resample)."""
    with one_blas_thread():
        return _fit_points(pts, law, n_runs=n_runs, units=units, grid=grid, starts=starts,
                           delta=delta, n_polish=n_polish)


def _fit_points(pts, law, *, n_runs, units, grid, starts, delta, n_polish) -> FitResult:
    law = get_law(law)
    if pts.n < len(law.params):
        raise FitError(
            f"law {law.name!r} has {len(law.params)} parameters but only {pts.n} point(s) were "
            f"given; fit needs at least as many points as parameters"
        )
    law.check_inputs(pts.x)
    units = resolve_units(law, units)
    x = {k: pts.x[k] / units[k].scale for k in law.inputs}
    obj = Objective(law, x, pts.loss, delta)

    if starts is None:
        starts = law.initial_grid(grid)
    starts = np.atleast_2d(np.asarray(starts, dtype=float))
    if starts.shape[1] != len(law.params):
        raise FitError(f"starts must have {len(law.params)} columns ({list(law.params)}), got {starts.shape[1]}")

    sc = screen(obj, starts)
    best_idx = distinct_best(sc, max(1, n_polish))
    if best_idx.size == 0:
        raise FitError(
            f"law {law.name!r}: the prediction overflowed from every one of {len(starts)} starts; "
            f"check the units and the initial grid"
        )
    if n_polish > 0:
        best = min((polish(obj, sc.theta[i]) for i in best_idx), key=lambda p: p.objective)
    else:  # the screen's own endpoint (bootstrap replicates: fast, converged to ~rtol)
        i = best_idx[0]
        best = Polished(sc.theta[i], float(sc.objective[i]), bool(sc.converged[i]), "screen only", sc.iterations)
    params = {name: float(v) for name, v in zip(law.params, best.theta)}
    return FitResult(
        law=law.name,
        params=params,
        constants=law.constants(params),
        objective=float(best.objective),
        units=units,
        n_points=pts.n,
        n_runs=int(n_runs),
        converged=best.converged,
        n_starts=int(len(starts)),
        delta=float(delta),
        message=best.message,
        candidates=np.vstack([best.theta[None, :], sc.theta[best_idx]]),
    )
