"""Recovery recipes compared: case by case, and through one law fitted across them.

When a results directory holds the same cases (family, size, method, ratio, study seed) post-
trained under the cross-entropy recipe and under another one (distillation, `nano-kd`), for
each case and other recipe (`compare_cases`):

* the share of the recovery gap won back at equal tokens: (L_pruned - L(D)) / (L_pruned - L0)
  at the last checkpoint both recipes reached, for each recipe;
* the tokens the other recipe needs to reach the CE run's final held-out loss (log-linear
  interpolation between its checkpoints; None when it never gets there within its budget),
  and their ratio, the token multiplier: how many CE tokens one token of the other recipe is
  worth at that loss.

And per (family, method, seed) the joint form `p2-d-joint` (`joint_fits`): both recipes share
the exponents and the ratio and size factors, the other recipe's tokens count k times. It is
fitted on the fit sizes of both recipes, with a whole-run bootstrap for k's interval and
identifiability, and tested on the held-out sizes: their other-recipe curves predicted by the
law, and from their CE curve alone (the CE loss measured at k x D, where k x D lies inside the
CE run: "if I distil instead, how many tokens do I need?").
"""

from __future__ import annotations

import math

import numpy as np

from bench.errors import USER_ERRORS
from bench.harness.fit_runs import run_from_record, sizes_by_params, study_seed
from reports.recipes import recipe_label
from reports.records import Record

JOINT_LAW = "p2-d-joint"


def _is_ce(rec: Record) -> bool:
    return rec.recipe_config().get("objective", "ce") == "ce"


def _case_key(rec: Record) -> tuple:
    return (rec.family, str(rec.model.key), rec.method, round(float(rec.ratio or 0.0), 6), study_seed(rec))


def _loss_at(tokens, loss, d: float) -> float | None:
    """The held-out loss at `d` tokens, log-linear between checkpoints (None outside them)."""
    t = np.log(np.asarray(tokens, dtype=float))
    if not t[0] - 1e-9 <= math.log(d) <= t[-1] + 1e-9:
        return None
    return float(np.interp(math.log(d), t, np.asarray(loss, dtype=float)))


def tokens_to_reach(tokens, loss, target: float) -> float | None:
    """The first tokens at which a curve reaches `target` (log-linear between checkpoints)."""
    prev_t = prev_l = None
    for t, l in zip(tokens, loss):
        if l <= target:
            if prev_t is None:
                return float(t)
            frac = (prev_l - target) / (prev_l - l)
            return float(math.exp(math.log(prev_t) + frac * (math.log(t) - math.log(prev_t))))
        prev_t, prev_l = t, l
    return None


def _usable(records: list[Record]) -> list[Record]:
    return [r for r in records if not r.unpruned and r.curve() is not None and r.posttrain.L0 is not None]


def compare_cases(records: list[Record]) -> list[dict]:
    """One row per (case, other recipe) held under the CE recipe and that recipe (see the module docstring)."""
    by_case: dict[tuple, list[Record]] = {}
    for r in _usable(records):
        by_case.setdefault(_case_key(r), []).append(r)
    rows = []
    for key, recs in sorted(by_case.items(), key=lambda kv: str(kv[0])):
        ce = [r for r in recs if _is_ce(r)]
        for ref in ce:
            for other in recs:
                if other is ref or _is_ce(other) or other.recipe_config().get("lora") != ref.recipe_config().get("lora"):
                    continue
                rows.append(_compare(ref, other))
    return rows


def _compare(ce: Record, other: Record) -> dict:
    (t_ce, l_ce), (t_o, l_o) = ce.curve(), other.curve()
    l0, start = ce.posttrain.L0, ce.posttrain.initial_val_loss
    common = min(t_ce[-1], t_o[-1])

    def won(tokens, loss):
        at = _loss_at(tokens, loss, common)
        return None if at is None or start is None or start <= l0 else (start - at) / (start - l0)

    reach = tokens_to_reach(t_o, l_o, l_ce[-1])
    return {"case": ce.case_id, "other_case": other.case_id, "family": ce.family, "size": str(ce.model.key),
            "method": ce.method, "ratio": ce.ratio, "seed": study_seed(ce),
            "ce_recipe": recipe_label(ce.recipe_config()), "recipe": recipe_label(other.recipe_config()),
            "tokens": common, "gap_won_ce": won(t_ce, l_ce), "gap_won": won(t_o, l_o),
            "ce_final_loss": l_ce[-1], "ce_final_tokens": t_ce[-1], "tokens_to_ce_final": reach,
            "multiplier": None if reach is None else t_ce[-1] / reach,
            "curves": {"ce": [list(map(float, t_ce)), list(map(float, l_ce))],
                       "other": [list(map(float, t_o)), list(map(float, l_o))], "L0": l0}}


def joint_fits(records: list[Record], holdout=None, bootstrap: int = 0, seed: int = 0, search: str = "coarse",
               n_polish: int = 2) -> list[dict]:
    """The joint form per (family, method, seed, other recipe) with both recipes (see the module docstring)."""
    from fitting import bootstrap as run_bootstrap
    from fitting import fit, get_law
    from fitting.identify import identifiability
    from fitting.metrics import evaluate_with_gap
    from fitting.protocols import extrapolation_metrics

    groups: dict[tuple, dict[str, list]] = {}
    for r in _usable(records):
        other = recipe_label(r.recipe_config())
        key = (r.family, r.method, study_seed(r))
        groups.setdefault(key, {}).setdefault("ce" if _is_ce(r) else other, []).append(r)
    out = []
    law = get_law(JOINT_LAW)
    for (family, method, seed), by_recipe in sorted(groups.items(), key=lambda kv: str(kv[0])):
        if "ce" not in by_recipe:
            continue
        for other, recs in sorted((k, v) for k, v in by_recipe.items() if k != "ce"):
            runs = [_joint_run(r, 0.0) for r in by_recipe["ce"]] + [_joint_run(r, 1.0) for r in recs]
            sizes = sizes_by_params(runs)
            held = [s for s in (holdout or sizes[-1:]) if s in sizes] if len(sizes) > 1 else []
            fit_runs = [r for r in runs if r.group not in held]
            entry = {"family": family, "method": method, "seed": seed, "ce_recipe": recipe_label(by_recipe["ce"][0].recipe_config()),
                     "recipe": other, "law": JOINT_LAW, "fit_sizes": [s for s in sizes if s not in held],
                     "heldout_sizes": held}
            search_kw = dict(units={"N0": 1e6}, starts=law.search_grid(search), n_polish=n_polish)
            try:
                result = fit(fit_runs, JOINT_LAW, **search_kw)
            except USER_ERRORS as exc:
                out.append({**entry, "fit": None, "error": str(exc)})
                continue
            boot = None
            if bootstrap:
                try:
                    boot = run_bootstrap(fit_runs, JOINT_LAW, n=bootstrap, seed=seed_of(seed), **search_kw)
                except USER_ERRORS as exc:
                    entry["bootstrap_error"] = str(exc)
            ident = identifiability(fit_runs, JOINT_LAW, boot, boot_error=entry.get("bootstrap_error"))
            k = result.constants["k"]
            entry.update(fit=result.to_dict(), k=k,
                         k_interval=None if boot is None else boot.to_dict()["intervals"].get("k"),
                         identifiability=ident, bootstrap=None if boot is None else boot.to_dict(), heldout={})
            for size in held:
                ce_runs = [r for r in runs if r.group == size and r.inputs["kd"] == 0.0]
                targets = [r for r in runs if r.group == size and r.inputs["kd"] == 1.0]
                law_metrics = extrapolation_metrics(evaluate_with_gap(result, targets)) if targets else None
                entry["heldout"][size] = {"law": law_metrics, "from_ce_curve": _from_ce(ce_runs, targets, k)}
            out.append(entry)
    return out


def seed_of(seed) -> int:
    return 0 if seed is None else int(seed)


def _joint_run(rec: Record, kd: float):
    run = run_from_record(rec)
    from fitting.data import Run

    return Run(f"{rec.case_id}", run.group, {**run.inputs, "kd": kd}, run.tokens, run.loss)


def _from_ce(ce_runs, targets, k: float) -> dict | None:
    """The other recipe's curves predicted from the CE curves alone: L_other(D) = L_CE(k D), each
    case read off the CE curve of the same pruned model (the same ratio: the same achieved
    ``rho``), at the checkpoints where k D lies inside that CE run (MAPE over those; how many
    were covered). A case without its CE twin is left out of both counts."""
    if not ce_runs or not targets:
        return None
    errors, covered, total = [], 0, 0
    for run in targets:
        ce_run = next((c for c in ce_runs if math.isclose(c.inputs["rho"], run.inputs["rho"], rel_tol=1e-9)), None)
        if ce_run is None:
            continue
        for d, actual in zip(run.tokens, run.loss):
            total += 1
            pred = _loss_at(ce_run.tokens, ce_run.loss, k * float(d))
            if pred is not None:
                covered += 1
                errors.append(abs(pred - actual) / actual)
    return {"mape": 100 * float(np.mean(errors)) if errors else None, "covered": covered, "points": total}
