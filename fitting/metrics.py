"""Validation metrics of a fitted law against observed losses (the paper's four).

All take the predicted and observed loss at the same points; the slope metric also needs each
point's tokens and run, because slopes are only taken between consecutive checkpoints of one run.
"""

from __future__ import annotations

import numpy as np

from fitting.errors import FitError
from fitting.laws.base import TOKENS
from fitting.objective import HUBER_DELTA, huber


def _pair(pred, actual) -> tuple[np.ndarray, np.ndarray]:
    pred, actual = np.asarray(pred, dtype=float), np.asarray(actual, dtype=float)
    if pred.shape != actual.shape or pred.ndim != 1:
        raise FitError(f"predictions {pred.shape} and observations {actual.shape} must be 1-D and match")
    if pred.size == 0:
        raise FitError("no points to evaluate the law on")
    return pred, actual


def r2(pred, actual) -> float:
    """Coefficient of determination of the loss, 1 - SS_res / SS_tot (NaN if the loss is constant)."""
    pred, actual = _pair(pred, actual)
    ss_tot = float(((actual - actual.mean()) ** 2).sum())
    ss_res = float(((actual - pred) ** 2).sum())
    return 1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan")


def huber_loss(pred, actual, delta: float = HUBER_DELTA) -> float:
    """Summed Huber loss of log(pred) - log(actual): the fit objective, on any points."""
    pred, actual = _pair(pred, actual)
    return float(huber(np.log(pred) - np.log(actual), delta).sum())


def mape(pred, actual) -> float:
    """Mean absolute percentage error, in percent."""
    pred, actual = _pair(pred, actual)
    return float(100.0 * np.mean(np.abs(pred - actual) / np.abs(actual)))


def slope_difference(pred, actual, tokens, run) -> float | None:
    """Mean |slope_pred - slope_actual| over consecutive checkpoints within each run.

    The slope is dL/dD between consecutive checkpoints (in the units `tokens` is given in), so
    this measures whether the law reproduces how fast the loss falls, not just its level.

    Returns:
        The mean over all consecutive pairs of all runs, or None when no run has two
        checkpoints (e.g. Chinchilla's one-point runs), so there is no slope to compare.
    """
    pred, actual = _pair(pred, actual)
    tokens, run = np.asarray(tokens, dtype=float), np.asarray(run)
    if tokens.shape != pred.shape or run.shape != pred.shape:
        raise FitError("tokens and run ids must have one value per point")
    diffs = []
    for rid in np.unique(run):
        idx = np.flatnonzero(run == rid)
        idx = idx[np.argsort(tokens[idx], kind="stable")]
        dd = np.diff(tokens[idx])
        keep = dd > 0  # repeated token counts carry no slope
        if not keep.any():
            continue
        s_pred = np.diff(pred[idx])[keep] / dd[keep]
        s_act = np.diff(actual[idx])[keep] / dd[keep]
        diffs.append(np.abs(s_pred - s_act))
    if not diffs:
        return None
    return float(np.concatenate(diffs).mean())


def evaluate(pred, actual, tokens, run, delta: float = HUBER_DELTA) -> dict:
    """All four metrics as a JSON-able dict (slope_difference may be None)."""
    return {
        "r2": r2(pred, actual),
        "huber": huber_loss(pred, actual, delta),
        "mape": mape(pred, actual),
        "slope_difference": slope_difference(pred, actual, tokens, run),
        "n_points": int(np.asarray(actual).size),
    }


def evaluate_fit(result, runs) -> dict:
    """Metrics of a `FitResult` on `runs`; slopes are per token in the fit's token unit."""
    runs = list(runs)
    if not runs:
        raise FitError("no runs to evaluate the law on")
    pred = np.concatenate([result.predict_run(r) for r in runs])
    actual = np.concatenate([r.loss for r in runs])
    tokens = np.concatenate([r.tokens for r in runs]) / result.units[TOKENS].scale
    run = np.concatenate([np.full(r.n_checkpoints, i) for i, r in enumerate(runs)])
    return evaluate(pred, actual, tokens, run, result.delta)


def information_criteria(result, runs) -> dict:
    """AIC and BIC of a fit, from a Gaussian likelihood of its log-loss residuals on `runs`.

    For comparing forms fitted to the same points: n ln(RSS / n) + 2k (AIC) or + k ln n (BIC),
    with k the form's fitted parameters. Lower is better; only differences within one group
    mean anything. The checkpoints of one run are not independent draws, so n overstates the
    information and BIC's penalty is the milder one here (stated with the figures).
    """
    runs = list(runs)
    if not runs:
        raise FitError("no runs to score the law on")
    resid = np.concatenate([np.log(result.predict_run(r)) - np.log(r.loss) for r in runs])
    n, k = int(resid.size), len(result.params)
    fit_term = n * float(np.log(max(float(np.mean(resid ** 2)), np.finfo(float).tiny)))
    return {"aic": fit_term + 2 * k, "bic": fit_term + k * float(np.log(n)), "k": k, "n": n}


def gap_errors(result, runs) -> dict:
    """Relative error on the recovery gap L - L0, per checkpoint, in percent.

    L0 is an input of the law, so MAPE on L flatters: with L - L0 ~ 0.1 nats and L ~ 4, 1%
    of L is 40% of the part the law predicts. Here the error is |pred - L| / (L - L0) at
    each checkpoint (L0 = the run's unpruned loss), averaged over all checkpoints (`mean`)
    and taken at each run's final checkpoint (`final`: the mean over runs; `final_worst`).
    Checkpoints at or below L0 have no gap to be relative to; they are counted in
    `n_nonpositive` and left out.

    Returns:
        {"mean", "final", "final_worst", "n_nonpositive", "per_run": {run_id: {"mean", "final"}}};
        the figures are None when no checkpoint has a positive gap, or the runs carry no L0.
    """
    runs = list(runs)
    if not runs:
        raise FitError("no runs to evaluate the gap error on")
    per_run, every, finals, n_bad = {}, [], [], 0
    for r in runs:
        if "L0" not in r.inputs:
            return {"mean": None, "final": None, "final_worst": None, "n_nonpositive": 0, "per_run": {},
                    "reason": "the runs carry no L0"}
        pred = result.predict_run(r)
        gap = r.loss - r.column("L0")
        ok = gap > 0
        n_bad += int((~ok).sum())
        err = 100.0 * np.abs(pred - r.loss)[ok] / gap[ok]
        every.append(err)
        final = float(err[-1]) if ok[-1] else None
        if final is not None:
            finals.append(final)
        per_run[r.run_id] = {"mean": float(err.mean()) if err.size else None, "final": final}
    every = np.concatenate(every)
    return {"mean": float(every.mean()) if every.size else None,
            "final": float(np.mean(finals)) if finals else None,
            "final_worst": float(np.max(finals)) if finals else None,
            "n_nonpositive": n_bad, "per_run": per_run}


def evaluate_with_gap(result, runs) -> dict:
    """`evaluate_fit` plus the gap errors (`gap_mean`, `gap_final`, ...) and `worst_ratio`."""
    runs = list(runs)
    m = evaluate_fit(result, runs)
    g = gap_errors(result, runs)
    m.update(gap_mean=g["mean"], gap_final=g["final"], gap_final_worst=g["final_worst"],
             gap_nonpositive=g["n_nonpositive"], gap_per_run=g["per_run"], worst_ratio=worst_ratio(result, runs))
    return m


def worst_ratio(result, runs) -> float:
    """The largest factor (either way) between prediction and measurement over all checkpoints.

    A fit that ran away predicts 8e6 nats for a loss of 4: its MAPE is a number, but not a
    measured error. This factor (inf for a non-finite or non-positive prediction) lets a
    report tell the two apart.
    """
    worst = 1.0
    for r in runs:
        with np.errstate(all="ignore"):
            q = np.asarray(result.predict_run(r), dtype=float) / r.loss
        if not np.all(np.isfinite(q)) or np.any(q <= 0):
            return float("inf")
        worst = max(worst, float(np.max(q)), float(np.max(1.0 / q)))
    return worst
