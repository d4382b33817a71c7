"""The multi-start fit: exactness, agreement with a plain scipy loop, units, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.optimize import minimize

from fitting.errors import FitError
from fitting import Run, fit, get_law
from fitting import multistart
from fitting._blas import one_blas_thread
from fitting.data import runs_from_table, stack
from fitting.objective import Objective, huber
from fitting.synthetic import make_runs

CHIN = dict(a=np.log(400.0), b=np.log(2000.0), e=np.log(1.8), alpha=0.34, beta=0.37)
P2 = dict(n_c=np.log(0.5), d_c=np.log(3.0), e=np.log(0.2), alpha=0.4, beta=0.5, gamma=-0.5, delta=0.1)
CHIN_TOKENS = np.geomspace(1e9, 3e11, 8)


def coarse(name):
    """Two values per axis (the ends of the law's grid): 2**P starts, none at the truth."""
    return {p: (min(v), max(v)) for p, v in get_law(name).grid.items()}


def test_huber_is_quadratic_inside_and_linear_outside():
    d = 1e-3
    assert huber(np.array([5e-4]), d)[0] == pytest.approx(0.5 * 5e-4**2)
    assert huber(np.array([-0.01]), d)[0] == pytest.approx(d * (0.01 - d / 2))


@pytest.mark.parametrize("name, truth", [("chinchilla", CHIN), ("p2", P2)])
def test_noise_free_data_are_fitted_exactly(name, truth):
    kw = {"tokens": CHIN_TOKENS} if name == "chinchilla" else {}
    res = fit(make_runs(name, truth, **kw), name, grid=coarse(name))
    assert res.converged
    assert res.objective < 1e-14
    for p, v in truth.items():
        assert res.params[p] == pytest.approx(v, abs=1e-4), p


def test_summed_not_averaged():
    runs = make_runs("chinchilla", CHIN, tokens=CHIN_TOKENS, noise=0.01, seed=3)
    res = fit(runs, "chinchilla", grid=coarse("chinchilla"))
    law = get_law("chinchilla")
    pts = stack(runs, law.inputs)
    r = law.log_predict(res.theta[None, :], pts.x)[0] - np.log(pts.loss)
    assert res.objective == pytest.approx(huber(r).sum(), rel=1e-12)


def test_best_start_is_at_least_as_good_as_a_plain_scipy_loop():
    """The batched screen + polish must match the per-start L-BFGS-B loop it replaces.

    48 points x 4,500 starts is big enough for the float32 first pass to run.
    """
    runs = make_runs("chinchilla", CHIN, sizes=(1e8, 3e8, 1e9, 3e9, 1e10, 3e10), tokens=CHIN_TOKENS,
                     noise=0.01, seed=1)
    law = get_law("chinchilla")
    grid = law.initial_grid()
    assert len(grid) * 48 >= multistart.FAST_PASS_ELEMENTS
    starts = grid[np.random.default_rng(0).choice(len(grid), size=40, replace=False)]
    pts = stack(runs, law.inputs)
    obj = Objective(law, pts.x, pts.loss)
    with one_blas_thread():  # the loop is ~50x slower with a threaded BLAS on a busy machine
        plain = min(minimize(obj.value_and_grad, s, jac=True, method="L-BFGS-B").fun for s in starts)
    ours = fit(runs, law)
    assert ours.objective <= plain * (1 + 1e-9)
    assert ours.converged
    # The float32 pass changes the route, not the destination.
    assert fit(runs, law, starts=starts).objective == pytest.approx(ours.objective, rel=1e-9)


def test_units_change_the_constants_consistently():
    """B / D**beta with D in millions must equal the raw-unit fit: B' = B * 1e6**(-beta)."""
    runs = make_runs("chinchilla", CHIN, tokens=CHIN_TOKENS, noise=0.005, seed=2)
    raw = fit(runs, "chinchilla", grid=coarse("chinchilla"))
    mil = fit(runs, "chinchilla", grid=coarse("chinchilla"), units={"D": 1e6})
    assert mil.units["D"].scale == 1e6 and raw.units["D"].scale == 1.0
    assert mil.objective == pytest.approx(raw.objective, rel=1e-7)
    for p in ("alpha", "beta", "E", "A"):
        assert mil.constants[p] == pytest.approx(raw.constants[p], rel=1e-4)
    assert mil.constants["B"] == pytest.approx(raw.constants["B"] * 1e6 ** -raw.constants["beta"], rel=1e-4)
    np.testing.assert_allclose(mil.predict_run(runs[0]), raw.predict_run(runs[0]), rtol=1e-6)


def test_result_is_json_and_complete():
    res = fit(make_runs("p2", P2, noise=0.001), "p2", grid=coarse("p2"))
    d = json.loads(json.dumps(res.to_dict(), allow_nan=False))
    assert d["law"] == "p2" and d["n_points"] == 120 and d["n_runs"] == 15
    assert set(d["params"]) == set(get_law("p2").params)
    assert set(d["constants"]) == {"N_C", "D_C", "E", "alpha", "beta", "gamma", "delta"}
    assert d["units"]["N0"]["scale"] == 1e9 and d["units"]["D"]["scale"] == 1e6
    assert d["converged"] is True and d["huber_delta"] == 1e-3
    # Never rounded: the natural constant is exactly exp of the fitted log.
    assert res.constants["N_C"] == np.exp(res.params["n_c"])


def test_predict_reproduces_the_data():
    runs = make_runs("p2-nm", {k: v for k, v in P2.items() if k != "gamma"})
    res = fit(runs, "p2-nm", grid=coarse("p2-nm"))
    for r in runs:
        np.testing.assert_allclose(res.predict_run(r), r.loss, rtol=1e-6)


# -- bad input ---------------------------------------------------------------------------------


def test_fewer_points_than_parameters():
    runs = make_runs("chinchilla", CHIN, sizes=(1e9,), tokens=(1e9, 1e10, 1e11, 1e12))
    with pytest.raises(FitError, match="5 parameters but only 4 point"):
        fit(runs, "chinchilla")


def test_run_without_checkpoints():
    with pytest.raises(FitError, match="no checkpoints"):
        Run("r", "g", {"N": 1e9}, [], [])


@pytest.mark.parametrize("tokens, loss, what", [([1e9, 0.0], [2.0, 1.9], "token counts"),
                                                 ([1e9, 2e9], [2.0, -1.0], "losses"),
                                                 ([1e9, 2e9], [2.0, np.nan], "losses")])
def test_non_positive_tokens_or_losses(tokens, loss, what):
    with pytest.raises(FitError, match=what):
        Run("r", "g", {"N": 1e9}, tokens, loss)


def test_missing_input_names_the_run_and_input():
    runs = [Run("only-d", "g", {}, np.geomspace(1e9, 1e10, 6), np.linspace(3, 2, 6))]
    with pytest.raises(FitError, match="'only-d' has no input 'N'"):
        fit(runs, "chinchilla")


def test_empty_selection_and_bad_grid_and_units():
    with pytest.raises(FitError, match="no runs"):
        fit([], "chinchilla")
    runs = make_runs("chinchilla", CHIN, tokens=CHIN_TOKENS)
    with pytest.raises(FitError, match="missing"):
        fit(runs, "chinchilla", grid={"a": (1.0,)})
    with pytest.raises(FitError, match="no input of"):
        fit(runs, "chinchilla", units={"rho": 1.0})
    with pytest.raises(FitError, match="positive"):
        fit(runs, "chinchilla", units={"D": 0.0})


def test_table_rows_become_runs():
    cols = {"n": np.array([1e9, 1e9, 2e9]), "d": np.array([1e9, 2e9, 1e9]),
            "l": np.array([2.5, 2.4, 2.3]), "run": np.array(["x", "x", "y"], dtype=object)}
    per_row = runs_from_table(cols, {"N": "n", "D": "d"}, "l")
    assert [r.n_checkpoints for r in per_row] == [1, 1, 1]
    grouped = runs_from_table(cols, {"N": "n", "D": "d"}, "l", run_column="run")
    assert [(r.run_id, r.n_checkpoints) for r in grouped] == [("x", 2), ("y", 1)]
    with pytest.raises(FitError, match="no column 'missing'"):
        runs_from_table(cols, {"N": "missing", "D": "d"}, "l")


def test_thread_count_does_not_change_the_answer(monkeypatch):
    # 48 points x 4,500 starts: large enough to be split across threads.
    runs = make_runs("chinchilla", CHIN, sizes=(1e8, 3e8, 1e9, 3e9, 1e10, 3e10), tokens=CHIN_TOKENS,
                     noise=0.01, seed=5)
    monkeypatch.setenv("PRUNEBENCH_FIT_THREADS", "1")
    one = fit(runs, "chinchilla")
    monkeypatch.setenv("PRUNEBENCH_FIT_THREADS", "3")
    three = fit(runs, "chinchilla")
    assert one.params == three.params and one.objective == three.objective
    monkeypatch.setenv("PRUNEBENCH_FIT_THREADS", "zero")
    with pytest.raises(FitError, match="PRUNEBENCH_FIT_THREADS"):
        fit(runs, "chinchilla")
