"""The paper's two validation protocols.

within_run: every run's first 80% of checkpoints (in time order) fit the law, and the last 20%
    validate it: can the law continue a curve it has seen the start of?
extrapolation: fit on runs of smaller base models, predict the whole curves of held-out larger
    ones: can the law tell how a model it has never seen will recover? Its MAPE per held-out
    model is the "extrapolation error" that the CI gate checks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

from fitting.errors import FitError, did_you_mean
from fitting.data import Run
from fitting.fitter import FitResult, fit
from fitting.laws.base import Law
from fitting.metrics import evaluate_fit


@dataclass(frozen=True)
class WithinRunResult:
    """Fit on the early checkpoints, metrics on the late ones (`validation`) and on the fit part."""

    fit: FitResult
    fraction: float
    validation: dict
    in_sample: dict

    def to_dict(self) -> dict:
        return {"protocol": "within_run", "fraction": self.fraction, "fit": self.fit.to_dict(),
                "validation": self.validation, "in_sample": self.in_sample}


@dataclass(frozen=True)
class ExtrapolationResult:
    """Fit on `fit_groups`; `heldout` maps each held-out group to its metrics."""

    fit: FitResult
    fit_groups: tuple[str, ...]
    heldout: dict[str, dict]

    def to_dict(self) -> dict:
        return {"protocol": "extrapolation", "fit_groups": list(self.fit_groups),
                "fit": self.fit.to_dict(), "heldout": self.heldout}


def split_run(run: Run, fraction: float = 0.8) -> tuple[Run, Run | None]:
    """The first `fraction` of a run's checkpoints and the rest (None if nothing is left).

    At least one checkpoint goes to the fit part; a one-checkpoint run has no validation part.
    """
    n = run.n_checkpoints
    k = min(n, max(1, math.floor(fraction * n + 1e-9)))
    head = run.select(slice(0, k))
    return head, (run.select(slice(k, n)) if k < n else None)


def within_run(runs: Sequence[Run], law: str | Law, fraction: float = 0.8, **fit_kwargs) -> WithinRunResult:
    """Fit on the first `fraction` of every run's checkpoints, validate on the rest.

    Raises:
        FitError: `fraction` outside (0, 1), or no run long enough to leave a validation part.
    """
    if not 0 < fraction < 1:
        raise FitError(f"the fit fraction must be in (0, 1), got {fraction}")
    parts = [split_run(r, fraction) for r in runs]
    heads = [h for h, _ in parts]
    tails = [t for _, t in parts if t is not None]
    if not tails:
        raise FitError("within-run validation needs runs with at least 2 checkpoints; none have")
    result = fit(heads, law, **fit_kwargs)
    return WithinRunResult(fit=result, fraction=fraction,
                           validation=evaluate_fit(result, tails), in_sample=evaluate_fit(result, heads))


def _check_groups(wanted: Iterable[str], known: set[str], what: str) -> tuple[str, ...]:
    wanted = tuple(dict.fromkeys(str(g) for g in wanted))
    for g in wanted:
        if g not in known:
            raise FitError(
                f"{what} {g!r} is not in the data{did_you_mean(g, known)}; groups present: {', '.join(sorted(known))}"
            )
    return wanted


def extrapolation_metrics(metrics: dict) -> dict:
    """A held-out target's metrics as an extrapolation reports them: without the per-run gap
    detail (`gap_per_run`), with `extrapolation_error` (= its MAPE, percent) added."""
    out = {k: v for k, v in metrics.items() if k != "gap_per_run"}
    out["extrapolation_error"] = out["mape"]
    return out


def extrapolation(
    runs: Sequence[Run],
    law: str | Law,
    fit_groups: Iterable[str],
    heldout_groups: Iterable[str] | None = None,
    **fit_kwargs,
) -> ExtrapolationResult:
    """Fit on runs whose group is in `fit_groups`, predict every held-out group's whole curves.

    Args:
        fit_groups: base model keys (sizes/families) to fit on, normally the smaller models.
        heldout_groups: keys to predict; default every other group in the data.

    Returns:
        Per held-out group the metrics of `fitting.metrics.evaluate` plus
        `extrapolation_error` (= its MAPE, percent).

    Raises:
        FitError: a group not in the data, overlapping or empty selections.
    """
    runs = list(runs)
    known = {r.group for r in runs}
    fit_groups = _check_groups(fit_groups, known, "fit group")
    if heldout_groups is None:
        heldout = tuple(sorted(known - set(fit_groups)))
    else:
        heldout = _check_groups(heldout_groups, known, "held-out group")
    if not fit_groups:
        raise FitError("extrapolation needs at least one group to fit on")
    if not heldout:
        raise FitError("extrapolation needs at least one held-out group; every group is in the fit set")
    overlap = set(fit_groups) & set(heldout)
    if overlap:
        raise FitError(f"groups {sorted(overlap)} are both fitted on and held out")
    result = fit([r for r in runs if r.group in fit_groups], law, **fit_kwargs)
    per_group = {}
    for g in heldout:
        per_group[g] = extrapolation_metrics(evaluate_fit(result, [r for r in runs if r.group == g]))
    return ExtrapolationResult(fit=result, fit_groups=fit_groups, heldout=per_group)
