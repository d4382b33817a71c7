"""Chinchilla (Hoffmann et al. 2022, Eq. 5), fitted as in Besiroglu et al. (2024)."""

from __future__ import annotations

import numpy as np

from fitting.laws.base import Asymptote, Law, Unit, logsumexp_terms, register


@register("chinchilla")
class Chinchilla(Law):
    """L(N, D) = E + A / N**alpha + B / D**beta

    N = model parameters, D = training tokens. Fitted in log space with a = log A, b = log B,
    e = log E: log L = LSE(a - alpha log N, b - beta log D, e). Raw units (parameters, tokens)
    by default, so the constants compare directly with the published ones.
    """

    params = ("a", "b", "e", "alpha", "beta")
    inputs = ("N", "D")
    units = {"N": Unit("parameters"), "D": Unit("tokens")}
    # Besiroglu et al.'s grid: 6 * 6 * 5 * 5 * 5 = 4,500 starts.
    grid = {
        "a": (0.0, 5.0, 10.0, 15.0, 20.0, 25.0),
        "b": (0.0, 5.0, 10.0, 15.0, 20.0, 25.0),
        "e": (-1.0, -0.5, 0.0, 0.5, 1.0),
        "alpha": (0.0, 0.5, 1.0, 1.5, 2.0),
        "beta": (0.0, 0.5, 1.0, 1.5, 2.0),
    }
    # Two values per parameter (32 starts), for searches repeated many times (bootstrap
    # replicates); the full grid remains the default of a single fit.
    coarse_grid = {"a": (5.0, 20.0), "b": (5.0, 20.0), "e": (-0.5, 0.5), "alpha": (0.3, 1.0), "beta": (0.3, 1.0)}
    axes = {"a": "log", "b": "log", "e": "log", "alpha": "N", "beta": "D"}
    axis_params = {"N": ("a", "alpha"), "D": ("b", "beta")}

    def log_predict(self, theta, x, jac=False):
        a, b, e, alpha, beta = (theta[:, i : i + 1] for i in range(5))  # each (S, 1)
        log_n = np.log(x["N"])[None, :]  # (1, n)
        log_d = np.log(x["D"])[None, :]
        t_n = a - alpha * log_n  # (S, n)
        t_d = b - beta * log_d
        t_e = np.broadcast_to(e, t_n.shape)
        out, (w_n, w_d, w_e) = logsumexp_terms([t_n, t_d, t_e])
        if not jac:
            return out
        J = np.stack([w_n, w_d, w_e, -w_n * log_n, -w_d * log_d], axis=1)  # (S, 5, n)
        return out, J

    def constants(self, params):
        return {
            "A": float(np.exp(params["a"])),
            "B": float(np.exp(params["b"])),
            "E": float(np.exp(params["e"])),
            "alpha": float(params["alpha"]),
            "beta": float(params["beta"]),
        }

    def asymptote(self, params, x):
        c = self.constants(params)
        limit = c["E"] + c["A"] / np.asarray(x["N"], dtype=float) ** c["alpha"]
        return Asymptote(limit=limit, coef=np.full_like(limit, c["B"]), beta=c["beta"])
