"""The P^2 law for N:M (2:4) semi-structured sparsity, where the ratio is fixed."""

from __future__ import annotations

import numpy as np

from fitting.laws import _p2core as core
from fitting.laws.base import Law, Unit, register


@register("p2-nm")
class P2NM(Law):
    """L(N0, D, L0) = L0 + (1/N0)**delta * (N_C / N0**alpha + D_C / D**beta + E)

    The paper's Eq. 7 for 2:4 sparsity: the pruning ratio is the same for every model, so the
    (1/rho)**gamma factor is a constant absorbed into the others and drops out. Same log
    parameterisation and units as `p2`.
    """

    candidate = "without the (1/rho)^gamma factor"
    candidate_rank = 4

    params = core.CORE + ("delta",)
    inputs = ("N0", "D", "L0")
    units = {"N0": Unit("parameters", 1e9), "D": Unit("tokens", 1e6), "L0": Unit("nats")}
    grid = {**core.CORE_GRID, "delta": (-0.5, 0.0, 0.5)}
    coarse_grid = {**core.CORE_COARSE, "delta": core.SIGN_COARSE}
    axes = {**core.CORE_AXES, "delta": "N0"}
    axis_params = {"N0": ("n_c", "alpha", "delta"), "D": ("d_c", "beta")}

    def log_predict(self, theta, x, jac=False):
        log_n0 = np.log(x["N0"])
        return core.log_predict(theta, log_n0, np.log(x["D"]), np.log(x["L0"]), [-log_n0], jac)

    def constants(self, params):
        return {**core.core_constants(params), "delta": float(params["delta"])}

    def asymptote(self, params, x):
        return core.asymptote(params, -params["delta"] * np.log(x["N0"]), x["N0"], x["L0"])
