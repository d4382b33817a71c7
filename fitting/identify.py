"""Is each fitted constant identified by the data? A stated, checkable criterion.

A constant is *identified* when its bootstrap interval (whole runs resampled, every replicate
searched afresh) changes the law by at most a factor `FACTOR` (10, one decade) over the
range of the data:

* an amplitude fitted as a log (N_C, D_C, E, A, B): the interval's ratio hi / lo <= 10;
* an exponent of an input X (alpha of N0, beta of D, gamma of rho): the term X**exponent
  moves by (max X / min X) ** (hi - lo) <= 10 across the fitted X;
* any other parameter: its interval is at most ln(10) wide.

A constant whose interval spans decades fails this and is reported as "not identified",
never as a bare number. Independently of the bootstrap, a fit is *structurally* not
identified when, along some input, the data have no more distinct values than the law has
parameters shaping it there (3 sizes for the 3 size parameters n_c, alpha, delta): the law
then passes through every level exactly and the data cannot test its shape.

A group's verdict is "identified" only when both checks pass for every constant.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from fitting.data import Run
from fitting.laws.base import get_law

FACTOR = 10.0
#: A bootstrap in which more than this share of replicates failed to fit is not trusted.
MAX_FAILED_SHARE = 0.1
# Words for the inputs in reasons ("3 sizes for 3 size parameters").
_LEVEL_WORD = {"N0": "sizes", "N": "pruned sizes", "rho": "ratios", "D": "token counts"}


def criterion() -> str:
    """The criterion in words, for reports and fit.json."""
    return (f"bootstrap interval moves the law by at most a factor {FACTOR:g} over the data "
            f"(amplitudes: hi/lo <= {FACTOR:g}; exponents of X: (max X/min X)^(hi-lo) <= {FACTOR:g}), "
            "and more distinct values of each input than parameters shaping it")


def _ranges(runs: Sequence[Run], law) -> dict[str, tuple[float, float, int]]:
    """Input -> (min, max, number of distinct values) over the runs."""
    out = {}
    for name in law.inputs:
        v = np.concatenate([r.column(name) for r in runs])
        out[name] = (float(v.min()), float(v.max()), int(np.unique(np.round(v, 12)).size))
    return out


def structural_reasons(runs: Sequence[Run], law) -> list[tuple[str, tuple[str, ...]]]:
    """(reason, parameters concerned) for every input the design cannot identify the form along."""
    law = get_law(law)
    ranges = _ranges(runs, law)
    reasons = []
    for name, params in law.axis_params.items():
        levels = ranges[name][2]
        if levels <= len(params):
            word = _LEVEL_WORD.get(name, f"values of {name}")
            what = {"N0": "size", "rho": "ratio", "D": "token"}.get(name, name)
            noun = word if levels != 1 else word.rstrip("s")
            reasons.append((f"{levels} {noun} for {len(params)} {what} parameter{'s' if len(params) != 1 else ''} "
                            f"({', '.join(params)})", tuple(params)))
    return reasons


def _constant_names(law) -> dict[str, str]:
    """Fit parameter -> natural constant name (constants() keeps the params' order)."""
    names = list(law.constants({p: 0.0 for p in law.params}))
    return dict(zip(law.params, names))


def identifiability(runs: Sequence[Run], law, boot=None, factor: float = FACTOR, boot_error: str | None = None) -> dict:
    """Verdicts per constant and for the fit as a whole.

    Args:
        runs: the runs the law was fitted on (their input ranges enter the criterion).
        law: the law form.
        boot: the `BootstrapResult` of the fit, or None (then no constant can be judged).
        factor: the allowed factor of change over the data.
        boot_error: why there is no bootstrap, when it could not run (said in the reasons).

    Returns:
        {"identified": bool, "verdict": "identified" | "not identified", "reasons": [...],
         "criterion": str, "constants": {name: {"identified", "spread", "interval", "reason"}}}
    """
    law = get_law(law)
    ranges = _ranges(runs, law)
    names = _constant_names(law)
    structural = structural_reasons(runs, law)
    reasons = [r for r, _ in structural]
    unshaped = {p: r for r, ps in structural for p in ps}
    constants = {}
    if boot is None:
        reasons.append(f"no bootstrap intervals ({boot_error or 'bootstrap off'})")
    else:
        if boot.n_failed > MAX_FAILED_SHARE * boot.n:
            reasons.append(f"{boot.n_failed} of {boot.n} bootstrap replicates could not be fitted")
        for p in law.params:
            lo, hi = boot.param_intervals[p]
            axis = law.axes.get(p)
            if axis == "log":
                spread = math.exp(hi - lo) if hi - lo < 700 else math.inf
                how = f"interval spans a factor {spread:.3g}"
            elif axis is not None:
                xmin, xmax, _ = ranges[axis]
                span = xmax / xmin if xmin > 0 else math.inf
                spread = span ** (hi - lo) if (hi - lo) * math.log(max(span, 1.0)) < 700 else math.inf
                how = f"moves {axis}**{p} by a factor {spread:.3g} over {axis} in [{xmin:.4g}, {xmax:.4g}]"
            else:
                spread = math.exp(hi - lo) if hi - lo < 700 else math.inf
                how = f"interval {hi - lo:.3g} wide"
            ok = bool(spread <= factor)
            reason = how + ("" if ok else f" (> {factor:g})")
            if p in unshaped:
                ok, reason = False, f"{unshaped[p]}; {reason}"
            ci = boot.intervals[names[p]]
            constants[names[p]] = {"identified": ok, "spread": spread, "interval": [float(ci[0]), float(ci[1])],
                                   "reason": reason}
        wide = [names[p] for p in law.params if constants[names[p]]["spread"] > factor]
        if wide:
            reasons.append(f"bootstrap intervals too wide for {', '.join(wide)}")
    ok = not reasons
    return {"identified": ok, "verdict": "identified" if ok else "not identified", "reasons": reasons,
            "criterion": criterion(), "factor": factor, "constants": constants}
