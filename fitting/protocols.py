"""What the generalisation tests (`fitting.generalise`) share: the time split of a run, and
a held-out target's metrics as an extrapolation reports them.

The larger-D test fits every run's first 80% of checkpoints (in time order) and predicts the
last 20%: can the law continue a curve it has seen the start of? The larger-N0 test fits the
smaller base models and predicts the held-out larger ones' whole curves; its MAPE per held-out
model is the "extrapolation error" that the CI gate checks.
"""

from __future__ import annotations

import math

from fitting.data import Run


def split_run(run: Run, fraction: float = 0.8) -> tuple[Run, Run | None]:
    """The first `fraction` of a run's checkpoints and the rest (None if nothing is left).

    At least one checkpoint goes to the fit part; a one-checkpoint run has no validation part.
    """
    n = run.n_checkpoints
    k = min(n, max(1, math.floor(fraction * n + 1e-9)))
    head = run.select(slice(0, k))
    return head, (run.select(slice(k, n)) if k < n else None)


def extrapolation_metrics(metrics: dict) -> dict:
    """A held-out target's metrics as an extrapolation reports them: without the per-run gap
    detail (`gap_per_run`), with `extrapolation_error` (= its MAPE, percent) added."""
    out = {k: v for k, v in metrics.items() if k != "gap_per_run"}
    out["extrapolation_error"] = out["mape"]
    return out
