"""Validation metrics on hand-computed examples."""

from __future__ import annotations

import numpy as np
import pytest

from fitting.errors import FitError
from fitting.metrics import evaluate, huber_loss, mape, r2, slope_difference


def test_r2():
    actual = np.array([1.0, 2.0, 3.0])
    assert r2(actual, actual) == 1.0
    # SS_res = 0.25 + 0 + 0.25, SS_tot = 2.
    assert r2(np.array([1.5, 2.0, 2.5]), actual) == pytest.approx(1 - 0.5 / 2)


def test_mape_is_percent():
    assert mape(np.array([1.1, 1.8]), np.array([1.0, 2.0])) == pytest.approx(10.0)


def test_huber_on_log_residuals_summed():
    pred = np.array([np.e ** 5e-4, np.e ** -0.01])  # log residuals 5e-4 (quadratic), -0.01 (linear)
    want = 0.5 * 5e-4**2 + 1e-3 * (0.01 - 0.5e-3)
    assert huber_loss(pred, np.ones(2)) == pytest.approx(want)


def test_slope_difference_within_runs_only():
    # Run 0: D = 1, 2, 4; actual L = 3, 2, 1.5 -> slopes -1, -0.25; pred L = 3, 2.5, 1.5 -> -0.5, -0.5.
    # Run 1: D = 1, 3; actual 2, 1 -> -0.5; pred 2, 2 -> 0. The jump between runs is not a slope.
    tokens = np.array([1, 2, 4, 1, 3.0])
    actual = np.array([3, 2, 1.5, 2, 1.0])
    pred = np.array([3, 2.5, 1.5, 2, 2.0])
    run = np.array([0, 0, 0, 1, 1])
    assert slope_difference(pred, actual, tokens, run) == pytest.approx((0.5 + 0.25 + 0.5) / 3)
    # Order of points must not matter: slopes are taken in token order within each run.
    perm = np.array([4, 2, 0, 3, 1])
    assert slope_difference(pred[perm], actual[perm], tokens[perm], run[perm]) == pytest.approx(1.25 / 3)


def test_slope_difference_without_pairs_is_none():
    one = np.array([2.0, 3.0])
    assert slope_difference(one, one, np.array([1.0, 2.0]), np.array([0, 1])) is None


def test_evaluate_and_bad_shapes():
    m = evaluate(np.array([2.0, 1.0]), np.array([2.0, 1.0]), np.array([1.0, 2.0]), np.zeros(2))
    assert m == {"r2": 1.0, "huber": 0.0, "mape": 0.0, "slope_difference": 0.0, "n_points": 2}
    with pytest.raises(FitError, match="must be 1-D and match"):
        r2(np.ones(2), np.ones(3))
    with pytest.raises(FitError, match="no points"):
        mape(np.array([]), np.array([]))
