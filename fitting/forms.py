"""Candidate law forms fitted to the same runs, compared by fit quality and by the conditions.

The final version of the P^2 paper picks its form this way; here every registered candidate
is fitted to the same group with the same search, and each gets the four fit metrics
in-sample, its errors on held-out runs (MAPE on L and on the gap L - L0), and the
condition check of `fitting.conditions`. A form whose fit fails is kept with its reason:
a comparison that silently drops the forms that failed would flatter the rest.
"""

from __future__ import annotations

from typing import Sequence

from fitting.errors import FitError
from fitting.conditions import check_conditions
from fitting.data import Run
from fitting.fitter import fit
from fitting.laws.base import LAWS, get_law
from fitting.metrics import evaluate_fit, evaluate_with_gap, information_criteria

def candidates() -> dict[str, str]:
    """The candidate forms, in report order, with what distinguishes each: every registered law
    whose class declares its own `candidate` note (`fitting.laws.base.Law.candidate`)."""
    forms = []
    for name, law in LAWS.items():
        own = vars(type(law))
        if own.get("candidate"):
            forms.append((own.get("candidate_rank", 0), name, own["candidate"]))
    return {name: note for _, name, note in sorted(forms)}


def compare_forms(fit_runs: Sequence[Run], heldout_runs: Sequence[Run] = (), forms: Sequence[str] | None = None,
                  search: str = "coarse", **fit_kwargs) -> list[dict]:
    """Fit every form in `forms` (default `candidates()`) to `fit_runs`.

    Args:
        fit_runs: the runs every form is fitted to.
        heldout_runs: runs every fit is also scored on (the held-out sizes), may be empty.
        search: "coarse" or "full": which of each law's grids starts the search.
        fit_kwargs: passed to `fit` (units are filtered to each form's inputs).

    Returns:
        One dict per form: law, note, formula, status ("ok" or "failed"), error, metrics
        (in-sample), criteria (AIC and BIC, `fitting.metrics.information_criteria`), heldout
        (MAPE and gap errors), conditions.
    """
    out = []
    units = dict(fit_kwargs.pop("units", None) or {})
    notes = candidates()
    for name in forms or notes:
        row = {"law": name, "note": notes.get(name, ""), "formula": None, "status": "failed", "error": None,
               "metrics": None, "criteria": None, "heldout": None, "conditions": None, "constants": None}
        try:
            law = get_law(name)
            row["formula"] = law.describe()
            missing = sorted({k for r in list(fit_runs) + list(heldout_runs) for k in law.inputs
                              if k != "D" and k not in r.inputs})
            if missing:
                raise FitError(f"the runs lack input {', '.join(missing)}"
                                 + (" (no control run of the same family, size and recipe)" if "L0D" in missing else ""))
            res = fit(fit_runs, law, units={k: v for k, v in units.items() if k in law.inputs},
                      starts=law.search_grid(search), **fit_kwargs)
            row.update(status="ok", constants=dict(res.constants), objective=res.objective, converged=res.converged,
                       metrics=evaluate_fit(res, fit_runs), criteria=information_criteria(res, fit_runs),
                       heldout=evaluate_with_gap(res, heldout_runs) if heldout_runs else None,
                       conditions=check_conditions(res, fit_runs))
            if row["heldout"] is not None:
                row["heldout"].pop("gap_per_run", None)
        except (FitError, ArithmeticError, ValueError, FloatingPointError) as exc:
            row["error"] = f"{exc.__class__.__name__}: {exc}" if not isinstance(exc, FitError) else str(exc)
        out.append(row)
    return out
