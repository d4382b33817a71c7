"""Identifiability verdicts, the condition checks and the gap error: their stated arithmetic."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fitting import fit, get_law
from fitting.conditions import check_conditions
from fitting.identify import FACTOR, identifiability, structural_reasons
from fitting.intervals import BootstrapResult
from fitting.metrics import gap_errors
from fitting.synthetic import make_runs

P2 = dict(n_c=np.log(0.5), d_c=np.log(3.0), e=np.log(0.2), alpha=0.4, beta=0.5, gamma=-0.5, delta=0.1)
SIZES = (1e8, 3e8, 1e9, 3e9)  # 30x in N0
COARSE = get_law("p2").search_grid("coarse")


def _boot(param_intervals: dict) -> BootstrapResult:
    law = get_law("p2")
    names = dict(zip(law.params, law.constants({p: 0.0 for p in law.params})))
    consts = {names[p]: ((math.exp(lo), math.exp(hi)) if p in ("n_c", "d_c", "e") else (lo, hi))
              for p, (lo, hi) in param_intervals.items()}
    return BootstrapResult(n=50, seed=0, level=0.95, intervals=consts, param_intervals=param_intervals,
                           samples={}, n_failed=0, n_unconverged=0)


def test_coarse_grid_reaches_the_full_grids_optimum():
    runs = make_runs("p2", P2, sizes=SIZES, noise=0.003, seed=2)
    law = get_law("p2")
    full = fit(runs, law)
    coarse = fit(runs, law, starts=law.search_grid("coarse"), n_polish=2)
    assert coarse.n_starts == 128 and full.n_starts == 2187
    assert coarse.objective <= full.objective * (1 + 1e-6)


def test_criterion_is_a_factor_of_ten_over_the_data():
    runs = make_runs("p2", P2, sizes=SIZES)  # N0 spans 30x, D 100x, rho 0.15..0.35
    ok = {"n_c": (0.0, math.log(9.9)), "d_c": (0.0, 0.1), "e": (-1.0, -0.9), "beta": (0.5, 0.5 + math.log(10) / math.log(100) - 1e-6),
          "alpha": (0.3, 0.3 + math.log(9.9) / math.log(30)), "gamma": (-0.6, -0.4), "delta": (0.0, 0.1)}
    v = identifiability(runs, "p2", _boot(ok))
    assert v["identified"], v["reasons"]
    wide = dict(ok, n_c=(0.0, math.log(10.1)), alpha=(0.3, 0.3 + math.log(10.1) / math.log(30)))
    v = identifiability(runs, "p2", _boot(wide))
    assert not v["identified"] and v["reasons"] == ["bootstrap intervals too wide for N_C, alpha"]
    assert v["constants"]["N_C"]["spread"] == pytest.approx(10.1) and v["constants"]["alpha"]["spread"] == pytest.approx(10.1)
    assert "(> 10)" in v["constants"]["alpha"]["reason"] and FACTOR == 10


def test_too_few_levels_along_an_input_is_structural():
    runs = make_runs("p2", P2, sizes=SIZES[:3], ratios=(0.25,))
    reasons = [r for r, _ in structural_reasons(runs, "p2")]
    assert reasons == ["3 sizes for 3 size parameters (n_c, alpha, delta)", "1 ratio for 1 ratio parameter (gamma)"]
    assert structural_reasons(make_runs("p2", P2, sizes=SIZES), "p2") == []


def test_conditions_of_the_true_form_and_of_a_wrong_sign():
    runs = make_runs("p2", P2, sizes=SIZES, noise=0.0)
    good = fit(runs, "p2", starts=COARSE)
    assert all(c["met"] for c in check_conditions(good, runs).values())
    # gamma > 0: the gap grows as rho -> 0 and falls with rho, breaking conditions 1 and 3.
    flipped = dict(P2, gamma=0.5)
    bad = fit(make_runs("p2", flipped, sizes=SIZES), "p2", starts=COARSE)
    c = check_conditions(bad, runs)
    assert c["rho->0"]["met"] is False and c["increasing-in-rho"]["met"] is False
    assert c["decreasing-in-D"]["met"] and c["gap-decreasing-in-N0"]["met"]


def test_a_gap_that_vanishes_below_float_resolution_still_meets_rho_to_zero():
    """gamma = -1.7: at rho = 1e-12 the gap is ~1e-20 of L0, so L0 + gap == L0 exactly at the end."""
    steep = dict(P2, gamma=-1.7)
    runs = make_runs("p2", steep, sizes=SIZES, noise=0.0)
    c = check_conditions(fit(runs, "p2", starts=COARSE), runs)
    assert c["rho->0"]["met"] is True, c["rho->0"]["detail"]
    # Without the rho factor the gap does not shrink at all: it fails on its share.
    nm = check_conditions(fit(runs, "p2-nm", starts=get_law("p2-nm").search_grid("coarse")), runs)
    assert nm["rho->0"]["met"] is False


def test_gap_error_is_relative_to_the_gap_not_the_loss():
    runs = make_runs("p2", P2, sizes=SIZES)
    res = fit(runs, "p2", starts=COARSE)
    run = runs[0]
    l0 = run.inputs["L0"]
    # The measured gap is 25% larger than the law's: 20% of the measured gap, ~1% of L.
    from fitting.data import Run

    shifted = Run(run.run_id, run.group, run.inputs, run.tokens, l0 + 1.25 * (res.predict_run(run) - l0))
    g = gap_errors(res, [shifted])
    assert g["mean"] == pytest.approx(20.0, rel=1e-6) and g["final"] == pytest.approx(20.0, rel=1e-6)
    assert g["n_nonpositive"] == 0 and set(g["per_run"]) == {run.run_id}
    below = Run("b", run.group, run.inputs, run.tokens, np.full(run.n_checkpoints, 0.9 * l0))
    g = gap_errors(res, [below])
    assert g["mean"] is None and g["n_nonpositive"] == run.n_checkpoints
