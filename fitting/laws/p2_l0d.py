"""Candidate form: the P^2 law over the measured control curve L0(D) instead of a constant L0."""

from __future__ import annotations

import numpy as np

from bench.errors import UsageError
from fitting.laws import _p2core as core
from fitting.laws.base import Law, Unit, register


@register("p2-l0d")
class P2L0D(Law):
    """L(N0, D, rho, L0D) = L0D + (1/rho)**gamma * (1/N0)**delta * (N_C / N0**alpha + D_C / D**beta + E)

    L0D = L0(D), the held-out loss of the control run (the unpruned base post-trained with
    the same recipe) after the same D tokens. A constant L0 credits the pruned model with
    every bit of improvement that is plain extra training of the base; measured against the
    control, the bracket is the part of the recovery that pruning made necessary. No
    reference study fits this form: it needs the control runs this suite records.
    """

    params = core.CORE + ("gamma", "delta")
    inputs = ("N0", "D", "rho", "L0D")
    units = {"N0": Unit("parameters", 1e9), "D": Unit("tokens", 1e6), "rho": Unit("fraction"), "L0D": Unit("nats")}
    grid = {**core.CORE_GRID, "gamma": (-0.5, 0.0, 0.5), "delta": (-0.5, 0.0, 0.5)}
    coarse_grid = {**core.CORE_COARSE, "gamma": core.SIGN_COARSE, "delta": core.SIGN_COARSE}
    axes = {**core.CORE_AXES, "gamma": "rho", "delta": "N0"}
    axis_params = {"N0": ("n_c", "alpha", "delta"), "D": ("d_c", "beta"), "rho": ("gamma",)}

    def log_predict(self, theta, x, jac=False):
        log_n0 = np.log(x["N0"])
        cols = [-np.log(x["rho"]), -log_n0]
        return core.log_predict(theta, log_n0, np.log(x["D"]), np.log(x["L0D"]), cols, jac)

    def constants(self, params):
        return {**core.core_constants(params), "gamma": float(params["gamma"]), "delta": float(params["delta"])}

    def check_inputs(self, x):
        super().check_inputs(x)
        if (np.asarray(x["rho"], dtype=float) >= 1).any():
            raise UsageError("law 'p2-l0d' needs the pruning ratio rho < 1 (fraction removed)")
