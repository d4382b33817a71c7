"""The four conditions a law of pruned models' recovery must meet, checked numerically.

The final version of the P^2 paper chooses its form among candidates partly by these:

1. `rho->0`: L -> L0 as rho -> 0 (an unpruned model needs no recovery);
2. `decreasing-in-D`: L decreases with D (post-training helps);
3. `increasing-in-rho`: L increases with rho (pruning more hurts more);
4. `gap-decreasing-in-N0`: at fixed rho and D, L - L0 decreases with N0 (larger models
   recover faster).

Each is checked on a grid over the fitted data's range (N0, D, rho between their smallest and
largest fitted values; L0 fixed at the median of the runs, since the law takes it as an
input). Condition 1 is checked by taking rho from the smallest fitted ratio down to
`RHO_LIMIT`: the gap must never rise and must end below `LIMIT_SHARE` of its value at the
smallest fitted ratio. A condition along an input the data do not vary (rho of 2:4) is "n/a".
Derived inputs follow from the grid point: N = N0 (1 - rho) for forms in the pruned size, and
the control curve L0(D) is held at the same L0.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from fitting.data import Run
from fitting.fitter import FitResult

CONDITIONS = ("rho->0", "decreasing-in-D", "increasing-in-rho", "gap-decreasing-in-N0")
RHO_LIMIT = 1e-12
LIMIT_SHARE = 0.01
_GRID = 7


def _span(runs: Sequence[Run], name: str) -> tuple[float, float] | None:
    vals = [np.asarray(r.column(name), dtype=float) for r in runs if name in r.inputs or name == "D"]
    if not vals:
        return None
    v = np.concatenate(vals)
    return float(v.min()), float(v.max())


def _predict(result: FitResult, n0, d, rho, l0) -> np.ndarray:
    n0, d, rho = np.broadcast_arrays(np.asarray(n0, float), np.asarray(d, float), np.asarray(rho, float))
    x = {"N0": n0, "D": d, "rho": rho, "N": n0 * (1.0 - rho), "L0": np.full(n0.shape, l0),
         "L0D": np.full(n0.shape, l0)}
    return result.predict(x).reshape(n0.shape)


def check_conditions(result: FitResult, runs: Sequence[Run]) -> dict:
    """{condition: {"met": True | False | None, "detail": str}} over the data range of `runs`."""
    runs = list(runs)
    n0s, ds = _span(runs, "N0"), _span(runs, "D")
    rhos = _span(runs, "rho")
    if rhos is None and all("N" in r.inputs and "N0" in r.inputs for r in runs):
        vals = np.concatenate([1 - r.column("N") / r.column("N0") for r in runs])
        rhos = (float(vals.min()), float(vals.max()))
    l0 = float(np.median([np.median(r.column("L0")) for r in runs])) if all("L0" in r.inputs for r in runs) else None
    out = {}
    if n0s is None or ds is None or rhos is None or l0 is None:
        for c in CONDITIONS:
            out[c] = {"met": None, "detail": "the runs lack N0, rho or L0"}
        return out
    N0 = np.geomspace(n0s[0], n0s[1], _GRID)
    D = np.geomspace(ds[0], ds[1], _GRID)
    rho_varies = rhos[1] > rhos[0] * (1 + 1e-9)
    R = np.linspace(rhos[0], rhos[1], _GRID) if rho_varies else np.array([rhos[0]])
    with np.errstate(all="ignore"):
        grid = _predict(result, N0[:, None, None], D[None, :, None], R[None, None, :], l0)  # (N0, D, rho)
        gap = grid - l0
        # 1. rho -> 0: from the smallest fitted ratio down to RHO_LIMIT at every (N0, D).
        tail = np.geomspace(rhos[0], RHO_LIMIT, 25)
        lim = _predict(result, N0[:, None, None], D[None, :, None], tail[None, None, :], l0) - l0
        if not rho_varies:
            out["rho->0"] = {"met": None, "detail": f"n/a: one pruning ratio ({rhos[0]:.3g}) in the data"}
        else:
            share = np.abs(lim[..., -1]) / np.abs(lim[..., 0])
            # Never rising, rather than strictly falling: a steep gap (rho^1.7 at rho = 1e-12) drops
            # below the float resolution of L0 + gap, and the last steps then differ by exactly 0.
            # A gap that does not shrink at all still fails, on its share.
            falling = bool(np.all(np.diff(lim, axis=-1) <= 0))
            ok = bool(falling and np.all(share < LIMIT_SHARE))
            out["rho->0"] = {"met": ok, "detail": f"gap at rho={RHO_LIMIT:g} is {np.nanmax(share):.3g} of the gap at "
                                                  f"rho={rhos[0]:.3g} (need < {LIMIT_SHARE:g}, falling at every step: {falling})"}
        dD = np.diff(grid, axis=1)
        out["decreasing-in-D"] = {"met": bool(np.all(dD < 0)),
                                  "detail": f"largest dL between D grid points {np.nanmax(dD):.3g} (need < 0)"}
        if not rho_varies:
            out["increasing-in-rho"] = {"met": None, "detail": f"n/a: one pruning ratio ({rhos[0]:.3g}) in the data"}
        else:
            dR = np.diff(grid, axis=2)
            out["increasing-in-rho"] = {"met": bool(np.all(dR > 0)),
                                        "detail": f"smallest dL between rho grid points {np.nanmin(dR):.3g} (need > 0)"}
        if n0s[1] <= n0s[0] * (1 + 1e-9):
            out["gap-decreasing-in-N0"] = {"met": None, "detail": "n/a: one size in the data"}
        else:
            dN = np.diff(gap, axis=0)
            out["gap-decreasing-in-N0"] = {"met": bool(np.all(dN < 0)),
                                           "detail": f"largest d(L-L0) between N0 grid points {np.nanmax(dN):.3g} (need < 0)"}
    return out
