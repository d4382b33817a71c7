"""Shared algebra of the P^2 family (p2, p2-n, p2-nm).

All three forms are  L = L0 + exp(s) * (N_C / N0**alpha + D_C / D**beta + E)  where the log
prefactor s is linear in the parameters (gamma * log(1/rho) - delta * log N0 for p2). In log
space, with n_c = log N_C, d_c = log D_C, e = log E:

    log L = LSE(log L0, s + LSE(n_c - alpha log N0, d_c - beta log D, e))

The positive amplitudes are what make the bracket a positive excess loss over L0 that decays in
D; exponents (alpha, beta, gamma, delta) are left free.
"""

from __future__ import annotations

import numpy as np

from fitting.laws.base import Asymptote, logsumexp_terms

# Parameters shared by every form, in this order, at the front of theta.
CORE = ("n_c", "d_c", "e", "alpha", "beta")
CORE_GRID = {
    "n_c": (-2.0, 0.0, 2.0),
    "d_c": (-2.0, 0.0, 2.0),
    "e": (-3.0, -1.0, 1.0),
    "alpha": (0.0, 0.5, 1.0),
    "beta": (0.1, 0.5, 1.0),
}
# Two values per parameter (2^7 = 128 starts for p2 instead of 2,187): the search the study
# repeats for its main fit and for every bootstrap replicate. On curves drawn from the law it
# reaches the full grid's optimum (tests/unit/test_fitting_identify.py checks it).
CORE_COARSE = {
    "n_c": (-2.0, 2.0),
    "d_c": (-2.0, 2.0),
    "e": (-3.0, 0.0),
    "alpha": (0.0, 1.0),
    "beta": (0.2, 0.8),
}
SIGN_COARSE = (-0.5, 0.5)  # gamma, delta
CORE_AXES = {"n_c": "log", "d_c": "log", "e": "log", "alpha": "N0", "beta": "D"}


def log_predict(theta, log_n0, log_d, log_l0, prefactor_cols, jac):
    """log L of the family.

    Args:
        theta: (S, 5 + k); the first five columns are CORE, the rest multiply `prefactor_cols`.
        log_n0, log_d, log_l0: (n,) logs of N0, D, L0 (scaled).
        prefactor_cols: k arrays (n,); s = sum_j theta[:, 5 + j] * prefactor_cols[j].
        jac: also return the (S, 5 + k, n) Jacobian.
    """
    n_c, d_c, e, alpha, beta = (theta[:, i : i + 1] for i in range(5))  # each (S, 1)
    log_n0, log_d = log_n0[None, :], log_d[None, :]
    t_n = n_c - alpha * log_n0  # (S, n)
    t_d = d_c - beta * log_d
    t_e = np.broadcast_to(e, t_n.shape)
    bracket, (w_n, w_d, w_e) = logsumexp_terms([t_n, t_d, t_e])
    s = np.zeros_like(bracket)
    for j, col in enumerate(prefactor_cols):
        s = s + theta[:, 5 + j : 6 + j] * col[None, :]
    excess = s + bracket  # log(L - L0), (S, n)
    out, (_, w_x) = logsumexp_terms([np.broadcast_to(log_l0[None, :], excess.shape), excess])
    if not jac:
        return out
    cols = [w_n, w_d, w_e, -w_n * log_n0, -w_d * log_d]
    cols = [w_x * c for c in cols] + [w_x * col[None, :] for col in prefactor_cols]
    return out, np.stack(cols, axis=1)  # (S, 5 + k, n)


def core_constants(params) -> dict[str, float]:
    return {
        "N_C": float(np.exp(params["n_c"])),
        "D_C": float(np.exp(params["d_c"])),
        "E": float(np.exp(params["e"])),
        "alpha": float(params["alpha"]),
        "beta": float(params["beta"]),
    }


def asymptote(params, log_prefactor, n0, l0) -> Asymptote:
    """L(D) = [L0 + K (N_C/N0^alpha + E)] + K D_C D^-beta with K = exp(log_prefactor)."""
    c = core_constants(params)
    k = np.exp(log_prefactor)
    limit = l0 + k * (c["N_C"] / n0 ** c["alpha"] + c["E"])
    return Asymptote(limit=limit, coef=k * c["D_C"], beta=c["beta"])
