"""Candidate form: the P^2 law reduced to its token term (p2 with N_C = E = 0)."""

from __future__ import annotations

import numpy as np

from fitting.errors import FitError
from fitting.laws.base import Asymptote, Law, Unit, logsumexp_terms, register


@register("p2-d")
class P2D(Law):
    """L(N0, D, rho, L0) = L0 + (1/rho)**gamma * (1/N0)**delta * D_C / D**beta

    The paper's form nested at the boundary N_C = E = 0: the recovery gap L - L0 is one power
    law in D, rho and N0, and vanishes as D grows. On the nano zoo every p2 fit drives N_C and E
    to 0 (depth: to the same objective to 16 digits), and a constant whose term the data set to
    zero cannot be identified. This form asks whether the data need those terms at all: the form
    comparison puts its fit, AIC and BIC beside p2's on the same runs. Fitted with d_c = log D_C;
    gamma and delta are free in sign.
    """

    candidate = "p2 nested at N_C = E = 0: the token term alone"
    candidate_rank = 7

    params = ("d_c", "beta", "gamma", "delta")
    inputs = ("N0", "D", "rho", "L0")
    units = {
        "N0": Unit("parameters", 1e9),
        "D": Unit("tokens", 1e6),
        "rho": Unit("fraction"),
        "L0": Unit("nats"),
    }
    grid = {"d_c": (-2.0, 0.0, 2.0), "beta": (0.1, 0.5, 1.0), "gamma": (-0.5, 0.0, 0.5), "delta": (-0.5, 0.0, 0.5)}
    coarse_grid = {"d_c": (-2.0, 2.0), "beta": (0.2, 0.8), "gamma": (-0.5, 0.5), "delta": (-0.5, 0.5)}
    axes = {"d_c": "log", "beta": "D", "gamma": "rho", "delta": "N0"}
    axis_params = {"N0": ("delta",), "D": ("d_c", "beta"), "rho": ("gamma",)}

    def log_predict(self, theta, x, jac=False):
        # log L = LSE(log L0, d_c - beta log D + gamma log(1/rho) + delta log(1/N0))
        cols = (np.ones_like(x["D"]), -np.log(x["D"]), -np.log(x["rho"]), -np.log(x["N0"]))
        excess = sum(theta[:, j : j + 1] * c[None, :] for j, c in enumerate(cols))
        log_l0 = np.broadcast_to(np.log(x["L0"])[None, :], excess.shape)
        out, (_, w) = logsumexp_terms([log_l0, excess])
        if not jac:
            return out
        return out, np.stack([w * c[None, :] for c in cols], axis=1)

    def constants(self, params):
        return {"D_C": float(np.exp(params["d_c"])), "beta": float(params["beta"]),
                "gamma": float(params["gamma"]), "delta": float(params["delta"])}

    def asymptote(self, params, x):
        # Full recovery in the limit: L(D) = L0 + K D_C D^-beta.
        k = np.exp(-params["gamma"] * np.log(x["rho"]) - params["delta"] * np.log(x["N0"]))
        return Asymptote(limit=np.asarray(x["L0"], dtype=float), coef=k * np.exp(params["d_c"]), beta=params["beta"])

    def check_inputs(self, x):
        super().check_inputs(x)
        if (np.asarray(x["rho"], dtype=float) >= 1).any():
            raise FitError(f"law {self.name!r} needs the pruning ratio rho < 1 (fraction removed)")
