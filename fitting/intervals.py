"""Bootstrap confidence intervals that resample whole runs.

Checkpoints of one post-training run are strongly autocorrelated, so resampling checkpoints
would pretend there is far more independent data than there is and give intervals that are too
narrow. Each replicate instead draws runs with replacement (as many as there are) and refits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from fitting.errors import FitError
from fitting.data import Points, Run, stack
from fitting.fitter import DEFAULT_POLISH, fit_points
from fitting.laws.base import Law, get_law


@dataclass(frozen=True)
class BootstrapResult:
    """Percentile intervals of every constant and parameter over the bootstrap replicates.

    Attributes:
        n: replicates requested; n_failed of them could not be fitted (e.g. a resample with
            fewer points than parameters) and are left out of the intervals.
        seed, level: the random seed and the interval's coverage (0.95 -> 2.5th..97.5th pct).
        intervals: natural constant name -> (low, high).
        param_intervals: fit parameter name -> (low, high).
        samples: natural constant name -> (n - n_failed,) replicate values.
        param_samples: fit parameter name -> (n - n_failed,) replicate values (what a
            prediction's uncertainty is computed from).
        n_unconverged: replicates whose polish did not report convergence (still included).
        search: how every replicate was searched (starts, polished endpoints): the same
            multistart search as the main fit, never a warm start from its optimum.
    """

    n: int
    seed: int
    level: float
    intervals: dict[str, tuple[float, float]]
    param_intervals: dict[str, tuple[float, float]]
    samples: dict[str, np.ndarray]
    n_failed: int
    n_unconverged: int
    param_samples: dict[str, np.ndarray] = None
    search: dict = None

    def to_dict(self) -> dict:
        return {
            "n": self.n,
            "seed": self.seed,
            "level": self.level,
            "resampled": "runs",
            "search": self.search,
            "intervals": {k: [float(a), float(b)] for k, (a, b) in self.intervals.items()},
            "param_intervals": {k: [float(a), float(b)] for k, (a, b) in self.param_intervals.items()},
            "replicates": {k: [float(x) for x in v] for k, v in (self.param_samples or {}).items()},
            "n_failed": self.n_failed,
            "n_unconverged": self.n_unconverged,
        }


def _subset(pts: Points, index: np.ndarray) -> Points:
    return Points(x={k: v[index] for k, v in pts.x.items()}, loss=pts.loss[index], run=pts.run[index])


def bootstrap(
    runs: Sequence[Run],
    law: str | Law,
    *,
    n: int = 200,
    seed: int = 0,
    level: float = 0.95,
    **fit_kwargs,
) -> BootstrapResult:
    """Percentile bootstrap over whole runs, each replicate searched afresh.

    Every replicate is fitted with exactly the search of the main fit (`fit_kwargs`: the
    same grid or starts and the same number of polished endpoints). Starting replicates
    from the full-data optimum instead finds the nearest local optimum of each resample and
    makes the intervals too narrow, precisely for the constants the data do not pin down.

    Args:
        runs: the data; each run is drawn whole.
        law: law name or instance.
        n: number of replicates.
        seed: seed of the resampling generator (results are reproducible for a given seed).
        level: coverage of the intervals, in (0, 1).
        fit_kwargs: passed to `fit_points` for every replicate (units, grid, starts, delta,
            n_polish): pass what the main fit was given.
    """
    law = get_law(law)
    runs = list(runs)
    if n < 1:
        raise FitError(f"bootstrap needs at least one replicate, got n={n}")
    if not 0 < level < 1:
        raise FitError(f"bootstrap level must be in (0, 1), got {level}")
    if len(runs) < 2:
        raise FitError(f"bootstrap resamples whole runs and needs at least 2 runs; got {len(runs)}")
    starts = fit_kwargs.get("starts")
    n_starts = len(starts) if starts is not None else len(law.initial_grid(fit_kwargs.get("grid")))
    search = {"starts": int(n_starts), "n_polish": int(fit_kwargs.get("n_polish", DEFAULT_POLISH)),
              "warm_start": False}

    pts = stack(runs, law.inputs)
    by_run = [np.flatnonzero(pts.run == i) for i in range(len(runs))]
    rng = np.random.default_rng(seed)
    consts, params = [], []
    n_failed = n_unconverged = 0
    for _ in range(n):
        pick = rng.integers(0, len(runs), size=len(runs))
        sample = _subset(pts, np.concatenate([by_run[i] for i in pick]))
        try:
            res = fit_points(sample, law, n_runs=len(pick), **fit_kwargs)
        except FitError:
            n_failed += 1
            continue
        n_unconverged += not res.converged
        consts.append(res.constants)
        params.append(res.params)
    if not consts:
        raise FitError(f"all {n} bootstrap replicates failed to fit; there are too few runs or points")

    lo, hi = 100 * (1 - level) / 2, 100 * (1 + level) / 2

    def intervals(rows):
        out = {}
        for k in rows[0]:
            v = np.array([r[k] for r in rows])
            out[k] = (float(np.percentile(v, lo)), float(np.percentile(v, hi)))
        return out

    return BootstrapResult(
        n=n, seed=seed, level=level,
        intervals=intervals(consts), param_intervals=intervals(params),
        samples={k: np.array([c[k] for c in consts]) for k in consts[0]},
        n_failed=n_failed, n_unconverged=n_unconverged,
        param_samples={k: np.array([p[k] for p in params]) for k in params[0]},
        search=search,
    )
