"""Candidate form: Chinchilla's law on the recovery gap L - L0, in the pruned size N."""

from __future__ import annotations

import numpy as np

from fitting.laws import _p2core as core
from fitting.laws.base import Law, Unit, register


@register("gap-chinchilla")
class GapChinchilla(Law):
    """L(N, D, L0) = L0 + E + A / N**alpha + B / D**beta

    Chinchilla (Eq. 5) on the excess over the unpruned loss, with N = parameters after
    pruning: the pruned model is treated as a smaller model trained for D tokens. It has no
    term that vanishes as the pruning ratio goes to 0, which the condition check exposes.
    Fitted as a = log A, b = log B, e = log E; N in 1e9 parameters, D in 1e6 tokens.
    """

    candidate = "Chinchilla on L - L0, in the pruned size N"
    candidate_rank = 5

    params = ("a", "b", "e", "alpha", "beta")
    inputs = ("N", "D", "L0")
    units = {"N": Unit("parameters", 1e9), "D": Unit("tokens", 1e6), "L0": Unit("nats")}
    grid = dict(zip(params, (core.CORE_GRID[k] for k in core.CORE)))
    coarse_grid = dict(zip(params, (core.CORE_COARSE[k] for k in core.CORE)))
    axes = {"a": "log", "b": "log", "e": "log", "alpha": "N", "beta": "D"}
    axis_params = {"N": ("a", "alpha"), "D": ("b", "beta")}

    def log_predict(self, theta, x, jac=False):
        # The P^2 core with an empty prefactor is exactly L0 + (A/N^alpha + B/D^beta + E).
        return core.log_predict(theta, np.log(x["N"]), np.log(x["D"]), np.log(x["L0"]), [], jac)

    def constants(self, params):
        c = core.core_constants({"n_c": params["a"], "d_c": params["b"], "e": params["e"],
                                 "alpha": params["alpha"], "beta": params["beta"]})
        return {"A": c["N_C"], "B": c["D_C"], "E": c["E"], "alpha": c["alpha"], "beta": c["beta"]}

    def asymptote(self, params, x):
        p = {"n_c": params["a"], "d_c": params["b"], "e": params["e"], "alpha": params["alpha"], "beta": params["beta"]}
        return core.asymptote(p, np.zeros_like(np.asarray(x["N"], dtype=float)), x["N"], x["L0"])
