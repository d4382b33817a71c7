"""The recovery recipes compared (fit.json's `recipes`, from `bench.harness.recipe_fit`).

Two tables: case by case, the share of the recovery gap each recipe won back at equal tokens and
the token multiplier (how many cross-entropy tokens one token of the other recipe is worth, at
the CE run's final loss) beside the joint law's k for that case's group; and per group, the joint
form `p2-d-joint`: k with its interval and identifiability, and its held-out test (the other
recipe's curves of the held-out size predicted by the law, and from that size's CE curve alone).
"""

from __future__ import annotations

from reports.numbers import fmt_num, fmt_pct, fmt_tokens
from reports.table import table as _table


def _joint_key(entry: dict) -> tuple:
    return entry["family"], entry["method"], entry.get("seed"), entry["recipe"]


def _k_cell(entry: dict | None) -> str:
    if entry is None or entry.get("fit") is None:
        return "–" if entry is None else f"not fitted: {entry.get('error')}"
    ident = entry.get("identifiability") or {}
    interval = entry.get("k_interval")
    ci = f" [{fmt_num(interval[0], 3)}, {fmt_num(interval[1], 3)}]" if interval else " (no interval: no bootstrap)"
    verdict = "" if ident.get("identified") else " (joint fit not identified)"
    return f"{fmt_num(entry['k'], 3)}{ci}{verdict}"


def cases_table(recipes: dict) -> str:
    """One row per case held under the CE recipe and another one."""
    joint = {_joint_key(e): e for e in recipes.get("joint") or []}
    rows = []
    for c in recipes.get("cases") or []:
        entry = joint.get((c["family"], c["method"], c.get("seed"), c["recipe"]))
        reach = c.get("tokens_to_ce_final")
        rows.append([c["case"] + ("" if c.get("seed") is None else f" (seed {c['seed']})"), c["recipe"],
                     fmt_tokens(c["tokens"]), fmt_pct(c.get("gap_won_ce")), fmt_pct(c.get("gap_won")),
                     "not reached" if reach is None else fmt_tokens(reach),
                     "–" if c.get("multiplier") is None else f"{fmt_num(c['multiplier'], 2)}×",
                     "–" if entry is None or entry.get("k") is None else f"{fmt_num(entry['k'], 2)}×"])
    return _table(rows, ["case", "other recipe", "tokens compared", "gap won back, CE ↑", "gap won back, other ↑",
                         "other's tokens to CE's final loss ↓", "token multiplier (measured)",
                         "token multiplier (joint law's k)"]) + "\n"


def joint_table(recipes: dict) -> str:
    """The joint form per group: k, its identifiability, and the held-out test."""
    rows = []
    for e in recipes.get("joint") or []:
        group = f"{e['family']}/{e['method']}" + ("" if e.get("seed") is None else f" (seed {e['seed']})")
        held = e.get("heldout") or {}
        if not held:
            rows.append([group, e["recipe"], _k_cell(e), ", ".join(e.get("fit_sizes") or []) or "–", "–", "–", "–"])
            continue
        for size, h in sorted(held.items()):
            law = h.get("law") or {}
            ce = h.get("from_ce_curve") or {}
            from_ce = "–" if ce.get("mape") is None else \
                f"{fmt_pct(ce['mape'] / 100)} ({ce['covered']} of {ce['points']} checkpoints inside the CE run)"
            rows.append([group, e["recipe"], _k_cell(e), ", ".join(e.get("fit_sizes") or []), size,
                         "–" if law.get("mape") is None else fmt_pct(law["mape"] / 100),
                         from_ce])
    return _table(rows, ["group", "other recipe", "k [CI]", "fitted on", "held out", "MAPE, law ↓",
                         "MAPE, from the CE curve at k·D ↓"]) + "\n"


def comparison_section(recipes: dict | None) -> str:
    """The whole section ('' when the records hold one recipe)."""
    if not recipes or not recipes.get("cases"):
        return ""
    return "\n".join([
        "## Recovery recipes compared", "",
        "The same cases post-trained under the cross-entropy recipe (CE) and another recipe. The gap is "
        "L_pruned − L0 (held-out loss before post-training minus the unpruned model's); its share won back "
        "is measured at the last checkpoint both runs reached. The token multiplier is CE's tokens over the "
        "other recipe's tokens to reach CE's final held-out loss: above 1, a token of the other recipe is "
        "worth more than one CE token.", "",
        cases_table(recipes),
        "Joint form `p2-d-joint`: both recipes share the exponents and the ratio and size factors, and the "
        "other recipe's tokens count k times (D_eff = k·D). Its held-out test predicts the held-out size's "
        "curves under the other recipe from the law, and from that size's CE curve alone (L(D) = L_CE(k·D), "
        "where k·D lies inside the CE run).", "",
        joint_table(recipes), ""])
