"""The P^2 law in the paper's first version, written through the pruned size N."""

from __future__ import annotations

import numpy as np

from fitting.errors import FitError
from fitting.laws import _p2core as core
from fitting.laws.base import Law, Unit, register


@register("p2-n")
class P2N(Law):
    """L(N0, N, D, L0) = L0 + (1 - N/N0)**gamma * (1/N0)**delta * (N_C / N0**alpha + D_C / D**beta + E)

    The v1-style form: N = parameters after pruning, N0 before. The factor (1 - N/N0) is the
    achieved pruning ratio and vanishes when N = N0 (for gamma > 0 the law then gives L0, the
    unpruned loss), so unpruned points (N = N0) are outside its domain. Same log
    parameterisation and units as `p2`; N and N0 must share a unit.
    """

    candidate = "the first version, through the pruned size N"
    candidate_rank = 2

    params = core.CORE + ("gamma", "delta")
    inputs = ("N0", "N", "D", "L0")
    units = {
        "N0": Unit("parameters", 1e9),
        "N": Unit("parameters", 1e9),
        "D": Unit("tokens", 1e6),
        "L0": Unit("nats"),
    }
    grid = {**core.CORE_GRID, "gamma": (-0.5, 0.0, 0.5), "delta": (-0.5, 0.0, 0.5)}
    coarse_grid = {**core.CORE_COARSE, "gamma": core.SIGN_COARSE, "delta": core.SIGN_COARSE}
    axes = {**core.CORE_AXES, "delta": "N0"}
    axis_params = {"N0": ("n_c", "alpha", "delta"), "D": ("d_c", "beta")}

    def log_predict(self, theta, x, jac=False):
        log_n0 = np.log(x["N0"])
        cols = [np.log1p(-x["N"] / x["N0"]), -log_n0]  # (1 - N/N0)^gamma * (1/N0)^delta
        return core.log_predict(theta, log_n0, np.log(x["D"]), np.log(x["L0"]), cols, jac)

    def constants(self, params):
        return {**core.core_constants(params), "gamma": float(params["gamma"]),
                "delta": float(params["delta"])}

    def asymptote(self, params, x):
        s = params["gamma"] * np.log1p(-x["N"] / x["N0"]) - params["delta"] * np.log(x["N0"])
        return core.asymptote(params, s, x["N0"], x["L0"])

    def check_inputs(self, x):
        super().check_inputs(x)
        n, n0 = np.asarray(x["N"], dtype=float), np.asarray(x["N0"], dtype=float)
        if (n >= n0).any():
            raise FitError("law 'p2-n' needs N < N0 (a pruned model); drop unpruned points or use 'p2'")

    def check_units(self, units):
        if units["N"].scale != units["N0"].scale:
            raise FitError("law 'p2-n' needs N and N0 in the same unit")
