"""Synthetic runs drawn from a law with known parameters, for tests, demos and sanity checks.

The design mimics the paper's experiment: a few base model sizes N0 (each its own group),
a few pruning ratios rho per size, and a post-training curve of checkpoints over D. For the
Chinchilla form each size's curve is its training curve (N = N0). The unpruned loss L0 is
taken from a fixed Chinchilla-like curve of N0, so it is positive and falls with size.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from fitting.data import Run
from fitting.laws.base import TOKENS, Law, get_law


def unpruned_loss(n0: float) -> float:
    """A plausible L0 for a model of n0 parameters (nats)."""
    return 1.8 + 400.0 / n0**0.34


#: Relative improvement of the synthetic control curve L0(D) over a run's token range.
CONTROL_IMPROVEMENT = 0.002


def control_curve(n0: float, tokens: np.ndarray) -> np.ndarray:
    """A control run's loss L0(D): the unpruned base easing by `CONTROL_IMPROVEMENT` near its plateau."""
    d = np.asarray(tokens, dtype=float)
    span = np.log(d.max() / d.min()) if d.max() > d.min() else 1.0
    return unpruned_loss(n0) * (1.0 - CONTROL_IMPROVEMENT * np.log(d / d.min()) / span)


def make_runs(
    law: str | Law,
    params: Mapping[str, float],
    *,
    sizes: Sequence[float] = (1e8, 3e8, 1e9, 3e9, 1e10),
    ratios: Sequence[float] = (0.15, 0.25, 0.35),
    tokens: Sequence[float] = tuple(np.geomspace(2e7, 2e9, 8)),
    noise: float = 0.0,
    seed: int = 0,
    units: Mapping[str, float] | None = None,
) -> list[Run]:
    """Runs whose losses follow `law` at `params` (fit parameterisation), times log-normal noise.

    Args:
        law: law name or instance.
        params: true parameters by name.
        sizes: base model sizes N0 in parameters; one group per size.
        ratios: pruning ratios; ignored by laws without rho or N (one run per size then).
        tokens: checkpoint token counts (raw), shared by every run.
        noise: standard deviation of the multiplicative noise on the loss (0.001 = 0.1%).
        seed: noise seed.
        units: input unit scales (default the law's).
    """
    from fitting.fitter import resolve_units

    law = get_law(law)
    theta = np.array([[params[p] for p in law.params]], dtype=float)
    scales = {k: u.scale for k, u in resolve_units(law, units).items()}
    pruned = "rho" in law.inputs or ("N" in law.inputs and "N0" in law.inputs)
    rng = np.random.default_rng(seed)
    d = np.asarray(tokens, dtype=float)
    runs = []
    for n0 in sizes:
        for rho in ratios if pruned else (None,):
            inputs = {}
            for name in law.inputs:
                if name == "N0":
                    inputs[name] = float(n0)
                elif name == "N":
                    inputs[name] = float(n0) * (1.0 - rho) if "N0" in law.inputs else float(n0)
                elif name == "rho":
                    inputs[name] = float(rho)
                elif name == "L0":
                    inputs[name] = unpruned_loss(n0)
                elif name == "L0D":
                    inputs[name] = control_curve(n0, d)
                elif name != TOKENS:
                    raise ValueError(f"make_runs does not know how to generate input {name!r}")
            x = {k: np.broadcast_to(inputs.get(k, 0.0), d.shape) / scales[k] for k in law.inputs if k != TOKENS}
            x[TOKENS] = d / scales[TOKENS]
            loss = np.exp(law.log_predict(theta, x)[0]) * np.exp(noise * rng.standard_normal(d.size))
            rid = f"{n0:g}" + ("" if rho is None else f"/{rho:g}")
            runs.append(Run(rid, f"{n0:g}", inputs, d, loss))
    return runs
