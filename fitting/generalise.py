"""The paper's three generalisation tests, each scored per target size on L and on L - L0.

* larger-d: the first 80% of every run's checkpoints (in time order) fit the law, the last
  20% are predicted (can the law continue a curve?);
* larger-n0: the smaller sizes fit it, the held-out larger sizes' whole curves are
  predicted (can it tell how an unseen model recovers?);
* higher-rho: the lower pruning ratios fit it, the highest ratio is predicted at every size
  (can it tell how a harsher pruning recovers?).

Every target gets the four metrics of `fitting.metrics.evaluate` and the relative error on
the recovery gap L - L0 (mean over checkpoints and at the final one), because MAPE on L
flatters a law that takes L0 as an input. A test that cannot run says why in `error`.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from fitting.errors import FitError
from fitting.data import Run
from fitting.fitter import FitResult, fit
from fitting.metrics import evaluate_with_gap
from fitting.protocols import split_run

TESTS = ("larger-d", "larger-n0", "higher-rho")


def _by_group(runs: Sequence[Run]) -> dict[str, list[Run]]:
    out: dict[str, list[Run]] = {}
    for r in runs:
        out.setdefault(r.group, []).append(r)
    return out


def _summary(result: FitResult) -> dict:
    return {"constants": dict(result.constants), "objective": result.objective, "n_runs": result.n_runs,
            "n_points": result.n_points, "converged": result.converged}


def _failed(test: str, fit_on: str, exc: Exception) -> dict:
    return {"test": test, "fit_on": fit_on, "fit": None, "targets": {}, "error": str(exc)}


def larger_d(runs: Sequence[Run], law, fraction: float = 0.8, **fit_kwargs) -> dict:
    """Fit the first `fraction` of each run, predict the rest; targets are the runs' groups."""
    fit_on = f"first {fraction:.0%} of each run's checkpoints"
    try:
        parts = [split_run(r, fraction) for r in runs]
        tails = [t for _, t in parts if t is not None]
        if not tails:
            raise FitError("no run has checkpoints left after the fit part")
        result = fit([h for h, _ in parts], law, **fit_kwargs)
    except FitError as exc:
        return _failed("larger-d", fit_on, exc)
    targets = {g: evaluate_with_gap(result, rs) for g, rs in sorted(_by_group(tails).items())}
    overall = evaluate_with_gap(result, tails)
    overall.pop("gap_per_run")
    return {"test": "larger-d", "fit_on": fit_on, "fit": _summary(result), "targets": targets, "error": None,
            "overall": overall}


def larger_n0(result: FitResult | None, heldout: Sequence[Run], fit_groups: Sequence[str], error: str | None = None) -> dict:
    """Score an existing fit on the smaller sizes against the held-out sizes' whole curves."""
    fit_on = "sizes " + ", ".join(fit_groups)
    if result is None or not heldout:
        why = error or ("no held-out size" if not heldout else "the fit failed")
        return {"test": "larger-n0", "fit_on": fit_on, "fit": None, "targets": {}, "error": why}
    targets = {g: evaluate_with_gap(result, rs) for g, rs in _by_group(heldout).items()}
    return {"test": "larger-n0", "fit_on": fit_on, "fit": _summary(result), "targets": targets, "error": None}


def higher_rho(runs: Sequence[Run], law, ratio_of: Mapping[str, float], **fit_kwargs) -> dict:
    """Fit every run below the highest nominal ratio, predict the highest at every size.

    Args:
        ratio_of: run_id -> nominal (target) pruning ratio; achieved ratios differ slightly
            per size, so the split is by the ratio the case asked for.
    """
    ratios = sorted({round(float(ratio_of[r.run_id]), 6) for r in runs})
    top = ratios[-1] if ratios else None
    fit_on = ("ratios " + ", ".join(f"{x:g}" for x in ratios[:-1]) + f"; predict {top:g}") if len(ratios) > 1 else \
        f"one ratio ({', '.join(f'{x:g}' for x in ratios) or 'none'})"
    try:
        if len(ratios) < 2:
            raise FitError(f"needs runs at 2 or more pruning ratios; this group has {len(ratios)}")
        low = [r for r in runs if round(float(ratio_of[r.run_id]), 6) < top]
        high = [r for r in runs if round(float(ratio_of[r.run_id]), 6) == top]
        result = fit(low, law, **fit_kwargs)
    except FitError as exc:
        return _failed("higher-rho", fit_on, exc)
    targets = {g: evaluate_with_gap(result, rs) for g, rs in sorted(_by_group(high).items())}
    return {"test": "higher-rho", "fit_on": fit_on, "fit": _summary(result), "targets": targets, "error": None}
