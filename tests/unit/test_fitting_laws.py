"""The law registry and every registered form: formulas, Jacobians, domains, units."""

from __future__ import annotations

import sys
import textwrap

import numpy as np
import pytest

import fitting.laws as laws_pkg
from fitting.errors import FitError
from fitting.laws import base
from fitting.laws import Law, Unit, available_laws, get_law, register
from fitting.synthetic import make_runs
from fitting.data import stack

ALL = ["chinchilla", "gap-chinchilla", "p2", "p2-d", "p2-d-joint", "p2-l0d", "p2-n", "p2-nm", "p2-no-n0"]

TRUE = {
    "chinchilla": dict(a=np.log(400.0), b=np.log(2000.0), e=np.log(1.8), alpha=0.34, beta=0.37),
    "p2": dict(n_c=np.log(0.5), d_c=np.log(3.0), e=np.log(0.2), alpha=0.4, beta=0.5, gamma=-0.5, delta=0.1),
    "p2-n": dict(n_c=np.log(0.5), d_c=np.log(3.0), e=np.log(0.2), alpha=0.4, beta=0.5, gamma=0.5, delta=0.1),
    "p2-nm": dict(n_c=np.log(0.5), d_c=np.log(3.0), e=np.log(0.2), alpha=0.4, beta=0.5, delta=0.1),
    "p2-no-n0": dict(n_c=np.log(0.5), d_c=np.log(3.0), e=np.log(0.2), alpha=0.4, beta=0.5, gamma=-0.5),
    "gap-chinchilla": dict(a=np.log(0.5), b=np.log(3.0), e=np.log(0.2), alpha=0.4, beta=0.5),
    "p2-l0d": dict(n_c=np.log(0.5), d_c=np.log(3.0), e=np.log(0.2), alpha=0.4, beta=0.5, gamma=-0.5, delta=0.1),
    "p2-d": dict(d_c=np.log(3.0), beta=0.5, gamma=-0.5, delta=0.1),
    "p2-d-joint": dict(d_c=np.log(3.0), beta=0.5, gamma=-0.5, delta=0.1, log_k=np.log(2.0)),
}


def natural_formula(name, c, x):
    """Each docstring's formula, written out independently of the log-space code."""
    if name == "chinchilla":
        return c["E"] + c["A"] / x["N"] ** c["alpha"] + c["B"] / x["D"] ** c["beta"]
    if name == "gap-chinchilla":
        return x["L0"] + c["E"] + c["A"] / x["N"] ** c["alpha"] + c["B"] / x["D"] ** c["beta"]
    if name == "p2-d-joint":  # p2-d with the second recipe's tokens counted k times
        d_eff = c["k"] ** x["kd"] * x["D"]
        return x["L0"] + (1 / x["rho"]) ** c["gamma"] * (1 / x["N0"]) ** c["delta"] * c["D_C"] / d_eff ** c["beta"]
    if name == "p2-d":  # p2 with N_C = E = 0
        return x["L0"] + (1 / x["rho"]) ** c["gamma"] * (1 / x["N0"]) ** c["delta"] * c["D_C"] / x["D"] ** c["beta"]
    bracket = c["N_C"] / x["N0"] ** c["alpha"] + c["D_C"] / x["D"] ** c["beta"] + c["E"]
    if name == "p2-l0d":  # the control curve L0(D) in place of the constant L0
        return x["L0D"] + (1 / x["rho"]) ** c["gamma"] * (1 / x["N0"]) ** c["delta"] * bracket
    if name == "p2-no-n0":
        return x["L0"] + (1 / x["rho"]) ** c["gamma"] * bracket
    if name == "p2":
        pre = (1 / x["rho"]) ** c["gamma"] * (1 / x["N0"]) ** c["delta"]
    elif name == "p2-n":
        pre = (1 - x["N"] / x["N0"]) ** c["gamma"] * (1 / x["N0"]) ** c["delta"]
    else:
        pre = (1 / x["N0"]) ** c["delta"]
    return x["L0"] + pre * bracket


def scaled_points(name):
    law = get_law(name)
    if name == "p2-d-joint":  # p2-d's points, every other one of the second recipe (kd = 1)
        pts = stack(make_runs("p2-d", TRUE["p2-d"]), get_law("p2-d").inputs)
        x = {k: pts.x[k] / law.units[k].scale for k in law.inputs if k != "kd"}
        return {**x, "kd": (np.arange(len(x["D"])) % 2).astype(float)}
    pts = stack(make_runs(name, TRUE[name]), law.inputs)
    return {k: pts.x[k] / law.units[k].scale for k in law.inputs}


def test_registry_holds_every_form():
    assert available_laws() == ALL


def test_unknown_law_lists_known_and_suggests():
    with pytest.raises(FitError) as exc:
        get_law("chinchila")
    msg = str(exc.value)
    assert "did you mean 'chinchilla'" in msg
    for name in ALL:
        assert name in msg


@pytest.mark.parametrize("name", ALL)
def test_declares_formula_params_inputs_units_grid(name):
    law = get_law(name)
    assert "L" in law.describe() and "=" in law.describe()
    assert "D" in law.inputs
    assert set(law.units) == set(law.inputs) and all(isinstance(u, Unit) for u in law.units.values())
    assert law.initial_grid().shape == (int(np.prod([len(law.grid[p]) for p in law.params])), len(law.params))


@pytest.mark.parametrize("name", ALL)
def test_log_predict_is_the_documented_formula(name):
    law = get_law(name)
    x = scaled_points(name)
    theta = np.array([[TRUE[name][p] for p in law.params]])
    got = np.exp(law.log_predict(theta, x)[0])
    want = natural_formula(name, law.constants(TRUE[name]), x)
    np.testing.assert_allclose(got, want, rtol=1e-12)


@pytest.mark.parametrize("name", ALL)
def test_jacobian_matches_finite_differences(name):
    law = get_law(name)
    x = scaled_points(name)
    rng = np.random.default_rng(0)
    theta = np.array([[TRUE[name][p] for p in law.params]]) + 0.1 * rng.standard_normal((3, len(law.params)))
    _, J = law.log_predict(theta, x, jac=True)  # (S, P, n)
    h = 1e-6
    for j in range(len(law.params)):
        step = np.zeros_like(theta)
        step[:, j] = h
        fd = (law.log_predict(theta + step, x) - law.log_predict(theta - step, x)) / (2 * h)
        np.testing.assert_allclose(J[:, j, :], fd, rtol=1e-6, atol=1e-8, err_msg=law.params[j])


def test_p2_n_factor_vanishes_at_the_unpruned_size():
    law = get_law("p2-n")
    theta = np.array([[TRUE["p2-n"][p] for p in law.params]])  # gamma = 0.5 > 0
    x = {"N0": np.array([1.0]), "N": np.array([1.0 - 1e-12]), "D": np.array([100.0]), "L0": np.array([2.5])}
    assert np.exp(law.log_predict(theta, x)[0, 0]) == pytest.approx(2.5, abs=1e-5)


def test_p2_nm_is_p2_without_the_ratio_factor():
    p2, nm = get_law("p2"), get_law("p2-nm")
    params = dict(TRUE["p2-nm"], gamma=0.7)
    x = scaled_points("p2")
    a = p2.log_predict(np.array([[params[p] for p in p2.params]]), {**x, "rho": np.ones_like(x["D"])})
    b = nm.log_predict(np.array([[params[p] for p in nm.params]]), x)
    np.testing.assert_allclose(a, b, rtol=1e-13)


def test_gamma_sign_is_free():
    # A negative gamma must give larger excess loss at larger ratios, not an error.
    law = get_law("p2")
    theta = np.array([[TRUE["p2"][p] for p in law.params]])
    assert TRUE["p2"]["gamma"] < 0
    x = {"N0": np.ones(2), "D": np.full(2, 100.0), "rho": np.array([0.2, 0.4]), "L0": np.full(2, 2.0)}
    low, high = np.exp(law.log_predict(theta, x)[0])
    assert high > low > 2.0


@pytest.mark.parametrize(
    "name, bad, match",
    [
        ("p2", {"rho": 1.0}, "rho < 1"),
        ("p2", {"rho": 0.0}, "rho"),
        ("p2-n", {"N": 2.0e9}, "N < N0"),
        ("chinchilla", {"N": -1.0}, "'N'"),
        ("p2-nm", {"L0": np.nan}, "'L0'"),
    ],
)
def test_inputs_outside_the_domain_are_usage_errors(name, bad, match):
    law = get_law(name)
    x = {"N0": 1e9, "N": 0.7e9, "D": 1e8, "rho": 0.3, "L0": 2.5}
    x = {k: np.array([v]) for k, v in {**x, **bad}.items() if k in law.inputs}
    with pytest.raises(FitError, match=match):
        law.check_inputs(x)


@pytest.fixture
def scratch_laws():
    """Every law a test registers is gone after it."""
    available_laws()
    with base.LAWS.scratch():
        yield base.LAWS


def test_register_rejects_malformed_law(scratch_laws):
    with pytest.raises(TypeError, match="grid must cover"):

        @register("broken")
        class Broken(Law):
            """L = E"""

            params = ("e",)
            inputs = ("D",)
            units = {"D": Unit("tokens")}
            grid = {}

    with pytest.raises(TypeError, match="already registered"):

        @register("chinchilla")
        class Twice(Law):
            """L = E"""

            params = ("e",)
            inputs = ("D",)
            units = {"D": Unit("tokens")}
            grid = {"e": (0.0,)}


def test_adding_a_form_is_one_module(tmp_path, monkeypatch, scratch_laws):
    """Dropping one module into the package's path registers a new, fittable form."""
    (tmp_path / "pure_power.py").write_text(textwrap.dedent('''
        import numpy as np
        from fitting.laws.base import Law, Unit, register

        @register("pure-power")
        class PurePower(Law):
            """L = B / D**beta"""

            params = ("b", "beta")
            inputs = ("D",)
            units = {"D": Unit("tokens", 1e6)}
            grid = {"b": (0.0, 2.0), "beta": (0.1, 1.0)}

            def log_predict(self, theta, x, jac=False):
                log_d = np.log(x["D"])[None, :]
                out = theta[:, :1] - theta[:, 1:2] * log_d
                if not jac:
                    return out
                return out, np.stack([np.ones_like(out), -np.broadcast_to(log_d, out.shape)], axis=1)

            def constants(self, p):
                return {"B": float(np.exp(p["b"])), "beta": p["beta"]}
    '''))
    scratch_laws.rediscover()
    monkeypatch.setattr(laws_pkg, "__path__", list(laws_pkg.__path__) + [str(tmp_path)])
    monkeypatch.delitem(sys.modules, "fitting.laws.pure_power", raising=False)
    try:
        assert "pure-power" in available_laws()
        from fitting import Run, fit

        d = np.geomspace(1e6, 1e9, 12)
        res = fit([Run("r", "g", {}, d, 3.0 / (d / 1e6) ** 0.3)], "pure-power")
        assert res.constants["B"] == pytest.approx(3.0, rel=1e-6)
        assert res.constants["beta"] == pytest.approx(0.3, rel=1e-6)
    finally:
        sys.modules.pop("fitting.laws.pure_power", None)


def test_p2_n_needs_one_unit_for_both_sizes():
    from fitting import fit

    runs = make_runs("p2-n", TRUE["p2-n"])
    with pytest.raises(FitError, match="same unit"):
        fit(runs, "p2-n", units={"N": 1e6})
