"""The fit objective: the Huber loss of log residuals, summed over points.

Residual r = log(predicted L) - log(observed L). Summed rather than averaged: with delta = 1e-3
the mean makes the objective so flat that L-BFGS-B stops long before the optimum (this is why
Hoffmann et al.'s published Chinchilla fit is off; see Besiroglu et al. 2024).

Everything here works on a batch of S parameter vectors at once; the batch is processed in
chunks so the (S, P, n) Jacobian never exceeds a fixed memory budget, and the chunks of a big
batch run in threads (see `fit_threads`).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Mapping

import numpy as np

from fitting.errors import FitError
from fitting.laws.base import Law

HUBER_DELTA = 1e-3
# Elements of the (chunk, n, P) Jacobian per chunk: ~32 MB of float64.
_CHUNK_ELEMENTS = 4_000_000
# Fraction of the IRLS weight given to points outside the Huber threshold (see gauss_newton).
OUTLIER_WEIGHT = 0.1


def huber(r: np.ndarray, delta: float = HUBER_DELTA) -> np.ndarray:
    """Elementwise Huber loss: r^2/2 inside |r| <= delta, delta (|r| - delta/2) outside."""
    a = np.abs(r)
    return np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))


# Below this many (start x point) elements a batch is not worth splitting across threads.
_MIN_PARALLEL_ELEMENTS = 200_000
_pools: dict[int, ThreadPoolExecutor] = {}


def fit_threads() -> int:
    """Threads for batched evaluation: $PRUNEBENCH_FIT_THREADS, else the cores (at most 4).

    numpy releases the GIL inside its array operations, so chunks of starts evaluated in
    threads run in parallel.
    """
    env = os.environ.get("PRUNEBENCH_FIT_THREADS", "").strip()
    if env:
        if not env.isdigit() or int(env) < 1:
            raise FitError(f"PRUNEBENCH_FIT_THREADS must be a positive integer, got {env!r}")
        return int(env)
    return max(1, min(4, os.cpu_count() or 1))


def _chunks(s: int, n: int, p: int) -> list[slice]:
    """Slices of the S starts: within the memory budget, and one per thread when worth it."""
    k = -(-s * n * p // _CHUNK_ELEMENTS)  # ceil: chunks the memory budget needs
    if s * n >= _MIN_PARALLEL_ELEMENTS:
        k = max(k, fit_threads())
    step = -(-s // max(1, k))
    return [slice(lo, min(s, lo + step)) for lo in range(0, s, max(1, step))]


def _map(fn, slices: list[slice]) -> None:
    """Run fn(slice) for every slice, in threads when there is more than one."""
    threads = fit_threads()
    if len(slices) == 1 or threads == 1:
        for sl in slices:
            fn(sl)
        return
    if threads not in _pools:
        _pools[threads] = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="prunebench-fit")
    for fut in [_pools[threads].submit(fn, sl) for sl in slices]:
        fut.result()  # re-raises a worker's exception here


class Objective:
    """Summed Huber loss of one law on one set of points, for batches of parameter vectors.

    Args:
        law: the law form.
        x: input name -> (n,) values already divided by the unit scales.
        loss: (n,) observed loss.
        delta: Huber threshold on log residuals.
    """

    def __init__(self, law: Law, x: Mapping[str, np.ndarray], loss: np.ndarray, delta: float = HUBER_DELTA,
                 dtype=np.float64):
        self.law = law
        self.dtype = np.dtype(dtype)
        self.x = {k: np.asarray(v, dtype=float).astype(self.dtype) for k, v in x.items()}
        self.log_loss = np.log(np.asarray(loss, dtype=float)).astype(self.dtype)
        self.delta = float(delta)
        self.n = int(self.log_loss.size)
        self.p = len(law.params)

    def with_dtype(self, dtype) -> "Objective":
        """The same objective computed in another precision (float32 for a fast first pass).

        Results are always returned as float64 arrays; only the arithmetic changes.
        """
        out = Objective.__new__(Objective)
        out.__dict__.update(self.__dict__)
        out.dtype = np.dtype(dtype)
        out.x = {k: v.astype(out.dtype) for k, v in self.x.items()}
        out.log_loss = self.log_loss.astype(out.dtype)
        return out

    def value(self, theta: np.ndarray) -> np.ndarray:
        """(S,) objective at (S, P) parameter vectors; non-finite predictions give +inf."""
        theta = np.atleast_2d(theta)
        out = np.empty(theta.shape[0])

        def work(sl):
            r = self.law.log_predict(theta[sl].astype(self.dtype), self.x) - self.log_loss  # (s, n)
            psi = np.clip(r, -self.delta, self.delta)
            out[sl] = (psi * (r - 0.5 * psi)).sum(axis=1)  # = summed Huber loss, cheaper

        _map(work, _chunks(theta.shape[0], self.n, 1))
        return np.where(np.isfinite(out), out, np.inf)

    def value_and_grad(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """Objective and its gradient at one (P,) vector, in the shape scipy expects."""
        pred, J = self.law.log_predict(np.asarray(theta, dtype=float)[None, :], self.x, jac=True)
        r = pred[0] - self.log_loss  # (n,)
        f = float(huber(r, self.delta).sum())
        if not np.isfinite(f):
            return np.inf, np.zeros(self.p)
        return f, J[0] @ np.clip(r, -self.delta, self.delta)  # psi = Huber derivative

    def gauss_newton(self, theta: np.ndarray):
        """Batched objective, gradient and Gauss-Newton matrix for the Huber loss.

        The matrix is J^T W J. Points inside the Huber threshold get weight 1 (the exact
        curvature); points outside get a fraction `OUTLIER_WEIGHT` of the IRLS weight
        delta/|r|. Their exact curvature is 0, which leaves starts with every point outside the
        threshold without any curvature to step on; the full IRLS weight, on the other hand,
        makes convergence crawl.

        Returns:
            f (S,), g (S, P), H (S, P, P); rows with a non-finite prediction have f = inf.
        """
        s = theta.shape[0]
        f = np.empty(s)
        g = np.empty((s, self.p))
        H = np.empty((s, self.p, self.p))

        def work(sl):
            pred, J = self.law.log_predict(theta[sl].astype(self.dtype), self.x, jac=True)  # (s, n), (s, P, n)
            r = pred - self.log_loss
            psi = np.clip(r, -self.delta, self.delta)
            f[sl] = (psi * (r - 0.5 * psi)).sum(axis=1)  # = summed Huber loss, cheaper
            q = psi / np.where(r == 0.0, 1.0, r)  # 1 inside the threshold, delta/|r| outside
            w = np.where(q == 1.0, 1.0, OUTLIER_WEIGHT * q)
            g[sl] = np.matmul(J, psi[:, :, None])[:, :, 0]
            H[sl] = np.matmul(J * w[:, None, :], J.transpose(0, 2, 1))

        _map(work, _chunks(s, self.n, self.p))
        bad = ~np.isfinite(f) | ~np.isfinite(g).all(axis=1) | ~np.isfinite(H).all(axis=(1, 2))
        f[bad] = np.inf
        return f, g, H

    def newton_decrement(self, theta: np.ndarray) -> float:
        """g^T H^+ g at one (P,) vector: the decrease the local quadratic model still promises.

        Scale-free in theta, and comparable with the objective itself, so "decrement <= 1e-8 f"
        says the point is optimal to 8 digits whatever the units. (Twice the usual decrement
        definition's half; the factor does not matter for a threshold.)
        """
        f, g, H = self.gauss_newton(np.asarray(theta, dtype=float)[None, :])
        if not np.isfinite(f[0]):
            return np.inf
        step = np.linalg.lstsq(H[0], g[0], rcond=1e-12)[0]
        return float(g[0] @ step)
