"""A joint form across post-training recipes: p2-d with the tokens of one recipe multiplied by k."""

from __future__ import annotations

import numpy as np

from fitting.errors import FitError
from fitting.laws.base import Asymptote, Law, Unit, logsumexp_terms, register


@register("p2-d-joint")
class P2DJoint(Law):
    """L(N0, D, rho, L0, kd) = L0 + (1/rho)**gamma * (1/N0)**delta * D_C / (k**kd * D)**beta

    Two post-training recipes (next-token cross-entropy, kd = 0, and a second one, kd = 1: a
    distillation) fitted together: they share the exponents and the ratio and size factors,
    and differ only by a multiplier on the tokens, D_eff = k * D for the second recipe. So k is
    how many tokens of the first recipe one token of the second is worth: k > 1, the second
    recovers with fewer tokens. It is not a candidate form of a single-recipe group (its runs
    carry no `kd`); `bench.harness.recipe_fit` fits it where the records hold both recipes.
    Fitted with d_c = log D_C and log_k = log k; gamma and delta are free in sign.
    """

    params = ("d_c", "beta", "gamma", "delta", "log_k")
    inputs = ("N0", "D", "rho", "L0", "kd")
    units = {
        "N0": Unit("parameters", 1e9),
        "D": Unit("tokens", 1e6),
        "rho": Unit("fraction"),
        "L0": Unit("nats"),
        "kd": Unit("indicator"),
    }
    grid = {"d_c": (-2.0, 0.0, 2.0), "beta": (0.1, 0.5, 1.0), "gamma": (-0.5, 0.0, 0.5), "delta": (-0.5, 0.0, 0.5),
            "log_k": (-1.0, 0.0, 1.0)}
    coarse_grid = {"d_c": (-2.0, 2.0), "beta": (0.2, 0.8), "gamma": (-0.5, 0.5), "delta": (-0.5, 0.5),
                   "log_k": (-0.5, 0.5)}
    axes = {"d_c": "log", "beta": "D", "gamma": "rho", "delta": "N0", "log_k": "log"}
    axis_params = {"N0": ("delta",), "D": ("d_c", "beta", "log_k"), "rho": ("gamma",)}

    def log_predict(self, theta, x, jac=False):
        # log L = LSE(log L0, d_c - beta (log D + kd log_k) + gamma log(1/rho) + delta log(1/N0))
        log_d, kd = np.log(x["D"]), np.asarray(x["kd"], dtype=float)
        beta, log_k = theta[:, 1:2], theta[:, 4:5]
        excess = (theta[:, 0:1] - beta * (log_d[None, :] + kd[None, :] * log_k)
                  - theta[:, 2:3] * np.log(x["rho"])[None, :] - theta[:, 3:4] * np.log(x["N0"])[None, :])
        log_l0 = np.broadcast_to(np.log(x["L0"])[None, :], excess.shape)
        out, (_, w) = logsumexp_terms([log_l0, excess])
        if not jac:
            return out
        cols = [np.ones_like(excess), -(log_d[None, :] + kd[None, :] * log_k), -np.log(x["rho"])[None, :] + 0 * excess,
                -np.log(x["N0"])[None, :] + 0 * excess, -beta * kd[None, :]]
        return out, np.stack([w * c for c in cols], axis=1)

    def constants(self, params):
        return {"D_C": float(np.exp(params["d_c"])), "beta": float(params["beta"]),
                "gamma": float(params["gamma"]), "delta": float(params["delta"]), "k": float(np.exp(params["log_k"]))}

    def asymptote(self, params, x):
        kd = np.asarray(x["kd"], dtype=float)
        k = np.exp(-params["gamma"] * np.log(x["rho"]) - params["delta"] * np.log(x["N0"])
                   - params["beta"] * kd * params["log_k"])
        return Asymptote(limit=np.asarray(x["L0"], dtype=float), coef=k * np.exp(params["d_c"]), beta=params["beta"])

    def check_inputs(self, x):
        kd = np.asarray(x["kd"], dtype=float)
        if not np.isin(kd, (0.0, 1.0)).all():
            raise FitError(f"law {self.name!r} needs input 'kd' to be 0 (the first recipe) or 1 (the second)")
        for name in ("N0", "D", "rho", "L0"):
            v = np.asarray(x[name], dtype=float)
            bad = ~np.isfinite(v) | (v <= 0)
            if bad.any():
                raise FitError(f"law {self.name!r} needs input {name!r} finite and > 0; "
                               f"{int(bad.sum())} point(s) have {name}={v[bad][0]!r}")
        if (np.asarray(x["rho"], dtype=float) >= 1).any():
            raise FitError(f"law {self.name!r} needs the pruning ratio rho < 1 (fraction removed)")
