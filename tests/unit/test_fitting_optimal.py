"""Optimal post-training tokens from the closed forms, checked against the law itself."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from fitting.errors import FitError
from fitting import fit, get_law, tokens_to_margin, tokens_to_slope
from fitting.synthetic import make_runs, unpruned_loss

P2 = dict(n_c=np.log(0.5), d_c=np.log(3.0), e=np.log(0.2), alpha=0.4, beta=0.5, gamma=-0.5, delta=0.1)
POINT = {"N0": 2e9, "rho": 0.25, "L0": unpruned_loss(2e9)}


@pytest.fixture(scope="module")
def result():
    grid = {p: (min(v), max(v)) for p, v in get_law("p2").grid.items()}
    return fit(make_runs("p2", P2), "p2", grid=grid)


def loss_at(result, tokens):
    return float(result.predict({**POINT, "D": [tokens]})[0])


def test_margin_is_where_the_curve_enters_the_band(result):
    t = tokens_to_margin(result, POINT, margin=0.01)
    assert t.reachable and t.tokens > 0
    assert t.loss == pytest.approx(1.01 * t.limit, rel=1e-9)
    assert loss_at(result, 0.99 * t.tokens) > 1.01 * t.limit > loss_at(result, 1.01 * t.tokens)
    # The limit is the D -> infinity loss.
    assert loss_at(result, 1e30) == pytest.approx(t.limit, rel=1e-9)
    # Raw tokens, not the law's millions: a tighter margin needs more of them.
    assert tokens_to_margin(result, POINT, margin=0.001).tokens > t.tokens > 1e6


def test_slope_is_where_the_marginal_gain_falls_below_the_threshold(result):
    thr = 1e-10  # 0.1 nats per billion tokens
    t = tokens_to_slope(result, POINT, thr)
    assert t.reachable
    h = 1e-4 * t.tokens
    slope = (loss_at(result, t.tokens + h) - loss_at(result, t.tokens - h)) / (2 * h)
    assert abs(slope) == pytest.approx(thr, rel=1e-5)


def test_never_within_range_is_explicit(result):
    flat = dataclasses.replace(result, params={**result.params, "beta": -0.2})
    t = tokens_to_margin(flat, POINT, margin=0.01)
    assert (t.tokens, t.reachable, t.limit) == (None, False, None)
    assert "beta" in t.reason
    growing = dataclasses.replace(result, params={**result.params, "beta": -1.5})
    assert tokens_to_slope(growing, POINT, 1e-10).tokens is None
    budget = tokens_to_margin(result, POINT, margin=0.01, max_tokens=1e3)
    assert budget.tokens > 1e3 and not budget.reachable and "max_tokens" in budget.reason


def test_bad_questions(result):
    with pytest.raises(FitError, match="margin"):
        tokens_to_margin(result, POINT, margin=0.0)
    with pytest.raises(FitError, match="threshold"):
        tokens_to_slope(result, POINT, threshold=-1.0)
    with pytest.raises(FitError, match="missing \\['rho'\\]"):
        tokens_to_margin(result, {"N0": 1e9, "L0": 2.0})
    with pytest.raises(FitError, match="rho < 1"):
        tokens_to_margin(result, {**POINT, "rho": 1.5})
