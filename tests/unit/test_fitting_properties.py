"""Hypothesis: data drawn from each form at random known parameters, with small noise, are
fitted back to those parameters (from the coarse two-value grid, which never contains them).

The designs span enough sizes and tokens for every term of the law to matter, so the
parameters are identified; on a design where a term is tiny, only the objective check holds.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fitting import fit, get_law
from fitting.data import stack
from fitting.objective import Objective
from fitting.synthetic import make_runs

NOISE = 1e-4  # 0.01% multiplicative noise on the loss
SETTINGS = settings(max_examples=3, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])


def coarse(name):
    return {p: (min(v), max(v)) for p, v in get_law(name).grid.items()}


def p2_family(**extra):
    return st.fixed_dictionaries({
        "n_c": st.floats(np.log(0.2), np.log(2.0)),
        "d_c": st.floats(np.log(1.0), np.log(10.0)),
        "e": st.floats(np.log(0.1), np.log(0.5)),
        "alpha": st.floats(0.3, 0.7),
        "beta": st.floats(0.3, 0.7),
        "delta": st.floats(-0.2, 0.3),
        **extra,
    })


LAWS = {
    "chinchilla": (
        st.fixed_dictionaries({
            "a": st.floats(np.log(200.0), np.log(1000.0)),
            "b": st.floats(np.log(300.0), np.log(3000.0)),
            "e": st.floats(np.log(1.5), np.log(2.0)),
            "alpha": st.floats(0.25, 0.45),
            "beta": st.floats(0.25, 0.45),
        }),
        {"sizes": (1e7, 1e8, 1e9, 1e10), "tokens": np.geomspace(1e8, 1e11, 8)},
    ),
    "p2": (p2_family(gamma=st.floats(-1.0, 1.0)), {}),
    "p2-n": (p2_family(gamma=st.floats(-1.0, 1.0)), {}),
    "p2-nm": (p2_family(), {}),
}


def check_recovery(name, truth, seed, design):
    runs = make_runs(name, truth, noise=NOISE, seed=seed, **design)
    res = fit(runs, name, grid=coarse(name), n_polish=2)
    assert res.converged
    # The optimiser must do at least as well as the true parameters on the noisy data ...
    law = get_law(name)
    pts = stack(runs, law.inputs)
    obj = Objective(law, {k: pts.x[k] / res.units[k].scale for k in law.inputs}, pts.loss)
    at_truth = obj.value(np.array([[truth[p] for p in law.params]]))[0]
    assert res.objective <= at_truth * (1 + 1e-9)
    # ... and land close to them.
    for p in law.params:
        assert res.params[p] == pytest.approx(truth[p], abs=0.05 + 0.02 * abs(truth[p])), p
    pred = np.concatenate([res.predict_run(r) for r in runs])
    clean = np.concatenate([r.loss for r in make_runs(name, truth, **design)])
    np.testing.assert_allclose(pred, clean, rtol=5 * NOISE)


@pytest.mark.parametrize("name", sorted(LAWS))
def test_recovers_known_parameters(name):
    strategy, design = LAWS[name]

    @SETTINGS
    @given(truth=strategy, seed=st.integers(0, 2**16))
    def run(truth, seed):
        check_recovery(name, truth, seed, design)

    run()
