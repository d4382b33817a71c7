"""Candidate form: the P^2 law without its (1/N0)**delta factor."""

from __future__ import annotations

import numpy as np

from fitting.errors import FitError
from fitting.laws import _p2core as core
from fitting.laws.base import Law, Unit, register


@register("p2-no-n0")
class P2NoN0(Law):
    """L(N0, D, rho, L0) = L0 + (1/rho)**gamma * (N_C / N0**alpha + D_C / D**beta + E)

    The paper's form with the size prefactor dropped: the size enters only through the
    N_C / N0**alpha term of the bracket. A candidate for the form comparison: if it fits as
    well as `p2`, the data cannot tell the two apart and delta is not supported by them.
    """

    candidate = "without the (1/N0)^delta factor"
    candidate_rank = 3

    params = core.CORE + ("gamma",)
    inputs = ("N0", "D", "rho", "L0")
    units = {"N0": Unit("parameters", 1e9), "D": Unit("tokens", 1e6), "rho": Unit("fraction"), "L0": Unit("nats")}
    grid = {**core.CORE_GRID, "gamma": (-0.5, 0.0, 0.5)}
    coarse_grid = {**core.CORE_COARSE, "gamma": core.SIGN_COARSE}
    axes = {**core.CORE_AXES, "gamma": "rho"}
    axis_params = {"N0": ("n_c", "alpha"), "D": ("d_c", "beta"), "rho": ("gamma",)}

    def log_predict(self, theta, x, jac=False):
        cols = [-np.log(x["rho"])]
        return core.log_predict(theta, np.log(x["N0"]), np.log(x["D"]), np.log(x["L0"]), cols, jac)

    def constants(self, params):
        return {**core.core_constants(params), "gamma": float(params["gamma"])}

    def asymptote(self, params, x):
        return core.asymptote(params, -params["gamma"] * np.log(x["rho"]), x["N0"], x["L0"])

    def check_inputs(self, x):
        super().check_inputs(x)
        if (np.asarray(x["rho"], dtype=float) >= 1).any():
            raise FitError("law 'p2-no-n0' needs the pruning ratio rho < 1 (fraction removed)")
