"""Tables from records: the seed table (perplexity without post-training) and post-training.

The seed table is LLM-Pruner's layout (methods at each sequence length, datasets as rows),
with the parameter counts under it; the post-training table gives, per case, the perplexities
dense, pruned and post-trained, the share of the loss recovered, and the control's improvement.
"""

from __future__ import annotations

import math
from collections import OrderedDict

from reports.numbers import fmt_num, fmt_pct
from reports.recipes import recipe_label
from reports.records import Record
from reports.table import table as _table

DATASET_TITLE = {"wikitext2": "WikiText2", "ptb": "PTB"}
SEQ_ORDER = (2048, 128)  # the seed table shows 2048 first


# ----------------------------------------------------------------------------- seed table


# A perplexity measured on a subset of the windows (a --max-windows cap). Not "*": a note
# line starting with "* " renders as a bullet in markdown.
CAPPED_MARK = "†"


def _cap_note(caps: dict) -> str:
    """The footnote of a table's capped figures: windows and predicted tokens per measurement."""
    parts = []
    order = list(DATASET_TITLE)  # the table's row order, then its column order
    for key in sorted(caps, key=lambda k: (order.index(k.split(":")[0]) if k.split(":")[0] in order else len(order),
                                           SEQ_ORDER.index(int(k.split(":")[1])) if int(k.split(":")[1]) in SEQ_ORDER
                                           else -1)):
        dataset, seq = key.split(":")
        for w, wt, t, tt in sorted(caps[key]):
            parts.append(f"{DATASET_TITLE.get(dataset, dataset)} at {seq}: {w:,} of {wt:,} windows "
                         f"({t:,} of {tt:,} predicted tokens)")
    return (f"{CAPPED_MARK} capped evaluation (--max-windows; --full-eval measures every window): "
            f"{'; '.join(parts)}; not comparable to full-protocol figures, which appear bare.")


def seed_tables(records: list[Record]) -> str:
    """One table per model in the layout of LLM-Pruner's results (no post-training).

    Columns are methods at each sequence length, rows are datasets; below each table the
    parameter counts before and after and the remaining ratio, per method. A figure measured
    on a subset of the windows carries `CAPPED_MARK`, and the note under its table gives the
    windows and tokens it saw: users paste these tables into papers.
    """
    by_model: OrderedDict[str, OrderedDict[str, dict]] = OrderedDict()
    for rec in sorted(records, key=lambda r: r.case_id):
        if rec.method == "control":
            continue
        cell = by_model.setdefault(rec.model.title, OrderedDict()).setdefault(
            rec.name, {"ppl": {}, "params": rec.params, "caps": {}})
        for k, v in rec.ppl_before_posttrain().items():
            cell["ppl"][k] = v.ppl
            cell["caps"][k] = v.cap()
    out = []
    for title, methods in by_model.items():
        labels = sorted(methods, key=lambda m: (m != "dense", m))
        seqs = sorted({int(k.split(":")[1]) for m in methods.values() for k in m["ppl"]},
                      key=lambda s: (SEQ_ORDER.index(s) if s in SEQ_ORDER else -1, -s))
        datasets = [d for d in DATASET_TITLE if any(k.startswith(d + ":") for m in methods.values() for k in m["ppl"])]
        if not seqs or not datasets:
            continue
        headers = ["Method"] + [lab for _ in seqs for lab in labels]
        rows = [["Sequence Length"] + [str(s) for s in seqs for _ in labels]]
        caps: dict[str, set] = {}

        def figure(lab: str, key: str) -> str:
            cap = methods[lab]["caps"].get(key)
            if cap is None:
                return fmt_num(methods[lab]["ppl"].get(key))
            caps.setdefault(key, set()).add(cap)
            return fmt_num(methods[lab]["ppl"][key]) + CAPPED_MARK

        for d in datasets:
            rows.append([f"{DATASET_TITLE[d]} (PPL) ↓"] + [figure(lab, f"{d}:{s}") for s in seqs for lab in labels])
        out.append(f"### {title}\n\n{_table(rows, headers)}\n")
        if caps:
            out.append(_cap_note(caps) + "\n")
        for lab in labels:
            p = methods[lab]["params"]
            if p is not None and p.before:
                out.append(f"- {lab}: #Param before: {p.before:,}, #Param after: {p.after:,}, "
                           f"Ratio = {100 * p.after / p.before:.4f}%")
        out.append("")
    return "\n".join(out).rstrip() + "\n" if out else "_No perplexity records._\n"


# ----------------------------------------------------------------------------- post-training


def control_improvement(rec: Record):
    """Relative drop of held-out loss over a control run's budget: (L0 - L_end) / L0."""
    pt = rec.posttrain
    if pt is None:
        return None
    if pt.control_improvement is not None or "control_improvement" in pt.nulls:
        return pt.control_improvement
    if not pt.trajectory or not pt.L0:
        return None
    return (pt.L0 - pt.final) / pt.L0


def recovered_fraction(dense: float | None, pruned: float | None, post: float | None):
    """Share of the perplexity lost to pruning that post-training won back, in log space."""
    if None in (dense, pruned, post) or pruned <= dense:
        return None
    return (math.log(pruned) - math.log(post)) / (math.log(pruned) - math.log(dense))


def posttrain_table(records: list[Record], eval_key: str | None = None) -> str:
    """Model, method, ratio, parameters, ppl dense / pruned / post-trained, recovery, control."""
    post = [r for r in records if r.posttrain is not None]
    if not post:
        return "_No post-training records._\n"
    if eval_key is None:
        keys = sorted({k for r in post for k in (r.ppl or {})})
        eval_key = next((k for k in keys if k.startswith("wikitext2:")), keys[0] if keys else None)

    def where(r: Record):  # one control per (family, size, recipe): the same size of two families differs
        return (r.model.family or "", r.model.key, recipe_label(r.recipe_config()))

    control = {where(r): control_improvement(r) for r in post if r.method == "control"}
    rows = []
    for r in sorted(post, key=lambda r: (r.model.family or "", where(r)[2], r.params.before,
                                         r.method != "control", r.method, r.ratio or 0)):
        dense, pruned, final = (r.ppl_of(stage, eval_key) for stage in ("ppl_dense", "ppl_pruned", "ppl"))
        p = r.params
        status = r.status + (" (diverged)" if r.posttrain.diverged else "")
        rows.append([
            f"{r.model.family or ''} {r.model.key or ''}".strip(), r.name, where(r)[2],
            fmt_pct(p.achieved_ratio), f"{p.before:,}", f"{p.after:,}",
            fmt_num(dense), fmt_num(pruned), fmt_num(final), fmt_pct(recovered_fraction(dense, pruned, final), 1),
            fmt_num(r.posttrain.final, 4), fmt_pct(control.get(where(r)), 2), status])
    headers = ["model", "method", "recipe", "ratio", "params before", "params after", f"ppl dense ↓ ({eval_key})",
               "ppl pruned ↓", "ppl post-trained ↓", "recovered ↑", "final held-out loss ↓",
               "control improvement", "status"]
    notes: dict[str, list[str]] = {}
    for r in post:
        if r.posttrain.objective_note:
            notes.setdefault(r.posttrain.objective_note.partition(": ")[2] or r.posttrain.objective_note, []).append(r.case_id)
    said = "".join(f"\n- {', '.join(sorted(ids))}: {note}.\n" for note, ids in sorted(notes.items()))
    return _table(rows, headers) + "\n" + said

