"""The P^2 law, final form of the paper (pruned models' post-training loss)."""

from __future__ import annotations

import numpy as np

from fitting.errors import FitError
from fitting.laws import _p2core as core
from fitting.laws.base import Law, Unit, register


@register("p2")
class P2(Law):
    """L(N0, D, rho, L0) = L0 + (1/rho)**gamma * (1/N0)**delta * (N_C / N0**alpha + D_C / D**beta + E)

    N0 = parameters before pruning, D = post-training tokens, rho = pruning ratio (fraction of
    parameters removed, 0 < rho < 1), L0 = loss of the unpruned model on the post-training
    data. Fitted with n_c = log N_C, d_c = log D_C, e = log E; gamma and delta are free in sign.
    Paper units: N0 in billions of parameters, D in millions of tokens.
    """

    candidate = "the paper's final form"
    candidate_rank = 1

    params = core.CORE + ("gamma", "delta")
    inputs = ("N0", "D", "rho", "L0")
    baseline = "L0"  # the input the bracket sits on (`p2-l0d` swaps in the control curve)
    units = {
        "N0": Unit("parameters", 1e9),
        "D": Unit("tokens", 1e6),
        "rho": Unit("fraction"),
        "L0": Unit("nats"),
    }
    grid = {**core.CORE_GRID, "gamma": (-0.5, 0.0, 0.5), "delta": (-0.5, 0.0, 0.5)}
    coarse_grid = {**core.CORE_COARSE, "gamma": core.SIGN_COARSE, "delta": core.SIGN_COARSE}
    axes = {**core.CORE_AXES, "gamma": "rho", "delta": "N0"}
    axis_params = {"N0": ("n_c", "alpha", "delta"), "D": ("d_c", "beta"), "rho": ("gamma",)}

    def log_predict(self, theta, x, jac=False):
        log_n0 = np.log(x["N0"])
        cols = [-np.log(x["rho"]), -log_n0]  # (1/rho)^gamma * (1/N0)^delta
        return core.log_predict(theta, log_n0, np.log(x["D"]), np.log(x[self.baseline]), cols, jac)

    def constants(self, params):
        return {**core.core_constants(params), "gamma": float(params["gamma"]),
                "delta": float(params["delta"])}

    def asymptote(self, params, x):
        s = -params["gamma"] * np.log(x["rho"]) - params["delta"] * np.log(x["N0"])
        return core.asymptote(params, s, x["N0"], x["L0"])

    def check_inputs(self, x):
        super().check_inputs(x)
        rho = np.asarray(x["rho"], dtype=float)
        if (rho >= 1).any():
            raise FitError(f"law {self.name!r} needs the pruning ratio rho < 1 (fraction removed); got {rho.max()!r}")
