"""The generalisation tests to larger D and larger N0 on curves of a known law, and the
whole-run bootstrap."""

from __future__ import annotations

import numpy as np
import pytest

import fitting.intervals as intervals_mod
from fitting.errors import FitError
from fitting import Run, bootstrap, fit, get_law
from fitting.generalise import larger_d, larger_n0
from fitting.protocols import split_run
from fitting.synthetic import make_runs

P2 = dict(n_c=np.log(0.5), d_c=np.log(3.0), e=np.log(0.2), alpha=0.4, beta=0.5, gamma=-0.5, delta=0.1)
GRID = {p: (min(v), max(v)) for p, v in get_law("p2").grid.items()}


def test_split_is_first_80_percent_in_time_order():
    tokens = np.array([5, 1, 3, 2, 4, 9, 7, 6, 8, 10.0]) * 1e6  # shuffled on purpose
    run = Run("r", "g", {"N0": 1e9}, tokens, 3.0 - tokens / 1e7)
    head, tail = split_run(run)
    np.testing.assert_array_equal(head.tokens, np.arange(1, 9) * 1e6)
    np.testing.assert_array_equal(tail.tokens, [9e6, 10e6])
    np.testing.assert_allclose(tail.loss, 3.0 - tail.tokens / 1e7)
    assert split_run(Run("one", "g", {}, [1e6], [2.0]))[1] is None


def test_larger_d_fits_early_checkpoints_and_predicts_late_ones():
    runs = make_runs("p2", P2, noise=0.002, seed=4)
    res = larger_d(runs, "p2", grid=GRID)
    n_total = sum(r.n_checkpoints for r in runs)  # 15 runs x 8 checkpoints
    assert res["error"] is None and res["fit"]["n_points"] == 15 * 6  # floor(0.8 * 8) = 6 per run
    assert res["overall"]["n_points"] == n_total - res["fit"]["n_points"]
    assert res["overall"]["mape"] < 1.0 and res["overall"]["r2"] > 0.9
    assert res["overall"]["slope_difference"] is not None


def test_larger_d_needs_a_validation_part():
    runs = [Run(str(i), "g", {"N": 1e9 * (i + 1)}, [1e9], [2.5 - 0.1 * i]) for i in range(6)]
    res = larger_d(runs, "chinchilla")
    assert res["fit"] is None and "no run has checkpoints left" in res["error"]


def _extrapolate(runs, law, fit_groups, grid):
    fitted = fit([r for r in runs if r.group in fit_groups], law, grid=grid)
    return fitted, larger_n0(fitted, [r for r in runs if r.group not in fit_groups], fit_groups)


def test_larger_n0_predicts_held_out_larger_models():
    runs = make_runs("p2", P2, noise=0.002, seed=5)
    groups = sorted({r.group for r in runs}, key=float)
    fitted, res = _extrapolate(runs, "p2", groups[:3], GRID)
    assert sorted(res["targets"]) == sorted(groups[3:])
    assert fitted.n_runs == 9
    for g, m in res["targets"].items():
        assert m["mape"] < 1.0, g
        assert m["n_points"] == 3 * 8


def test_larger_n0_error_reflects_a_wrong_law():
    """Data from p2 with gamma != 0 fitted by a law blind to rho extrapolate visibly worse."""
    runs = make_runs("p2", dict(P2, gamma=-1.5), noise=0.0)
    groups = sorted({r.group for r in runs}, key=float)
    _, good = _extrapolate(runs, "p2", groups[:3], GRID)
    nm_grid = {p: (min(v), max(v)) for p, v in get_law("p2-nm").grid.items()}
    _, blind = _extrapolate(runs, "p2-nm", groups[:3], nm_grid)
    g = groups[-1]
    assert blind["targets"][g]["mape"] > 10 * good["targets"][g]["mape"]


def test_larger_n0_without_a_fit_or_a_held_out_size_says_why():
    assert larger_n0(None, [], ["s1"], error="the fit failed: x")["error"] == "the fit failed: x"
    runs = make_runs("p2", P2)
    fitted = fit(runs, "p2", grid=GRID)
    assert larger_n0(fitted, [], ["s1"])["error"] == "no held-out size"


# -- bootstrap ---------------------------------------------------------------------------------


def test_bootstrap_draws_whole_runs(monkeypatch):
    runs = make_runs("p2", P2, noise=0.003, seed=6)
    sizes = {i: r.n_checkpoints for i, r in enumerate(runs)}
    seen = []
    real = intervals_mod.fit_points

    def spy(pts, law, **kw):
        seen.append(pts)
        return real(pts, law, **kw)

    monkeypatch.setattr(intervals_mod, "fit_points", spy)
    bootstrap(runs, "p2", n=5, seed=1, grid=GRID, n_polish=0)
    assert len(seen) == 5
    for pts in seen:
        counts = np.bincount(pts.run, minlength=len(runs))
        # Each run appears 0, 1, 2, ... whole times, never a partial set of its checkpoints.
        assert all(c % sizes[i] == 0 for i, c in enumerate(counts))
        assert counts.sum() // 8 == len(runs)  # as many runs drawn as there are


def test_bootstrap_is_reproducible_and_brackets_the_estimate():
    runs = make_runs("p2", P2, noise=0.01, seed=7, sizes=(1e8, 1e9, 1e10))
    est = fit(runs, "p2", grid=GRID)
    a = bootstrap(runs, "p2", n=10, seed=3, grid=GRID, n_polish=0)
    b = bootstrap(runs, "p2", n=10, seed=3, grid=GRID, n_polish=0)
    c = bootstrap(runs, "p2", n=10, seed=4, grid=GRID, n_polish=0)
    assert a.intervals == b.intervals
    assert a.intervals != c.intervals
    assert a.n_failed == 0
    for name, (lo, hi) in a.intervals.items():
        assert lo < hi, name
        assert lo <= est.constants[name] <= hi, name
    narrow = bootstrap(runs, "p2", n=10, seed=3, level=0.5, grid=GRID, n_polish=0)
    lo, hi = a.intervals["beta"]
    nlo, nhi = narrow.intervals["beta"]
    assert lo <= nlo and nhi <= hi
    assert a.to_dict()["resampled"] == "runs"


def test_bootstrap_searches_every_replicate_like_the_main_fit(monkeypatch):
    """No warm start: each replicate gets the main fit's whole grid and polish, never its optimum."""
    runs = make_runs("p2", P2, noise=0.003, seed=6)
    seen = []
    real = intervals_mod.fit_points

    def spy(pts, law, **kw):
        seen.append(kw)
        return real(pts, law, **kw)

    monkeypatch.setattr(intervals_mod, "fit_points", spy)
    boot = bootstrap(runs, "p2", n=3, seed=1, grid=GRID, n_polish=1)
    assert [kw["grid"] for kw in seen] == [GRID] * 3 and all(kw["n_polish"] == 1 for kw in seen)
    assert "starts" not in seen[0]
    n_starts = int(np.prod([len(v) for v in GRID.values()]))
    assert boot.to_dict()["search"] == {"starts": n_starts, "n_polish": 1, "warm_start": False}
    assert len(boot.to_dict()["replicates"]["beta"]) == 3


def test_bootstrap_needs_two_runs():
    with pytest.raises(FitError, match="at least 2 runs"):
        bootstrap(make_runs("p2", P2, sizes=(1e9,), ratios=(0.25,)), "p2", n=3)
