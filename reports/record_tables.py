"""Tables from records: the seed table (perplexity without post-training) and post-training.

The seed table is LLM-Pruner's layout (methods at each sequence length, datasets as rows),
with the parameter counts under it; the post-training table gives, per case, the perplexities
dense, pruned and post-trained, the share of the loss recovered, and the control's improvement.
"""

from __future__ import annotations

import math
from collections import OrderedDict

from reports.numbers import fmt_num, fmt_pct
from reports.recipes import recipe_config, recipe_label
from reports.table import table as _table

DATASET_TITLE = {"wikitext2": "WikiText2", "ptb": "PTB"}
SEQ_ORDER = (2048, 128)  # the seed table shows 2048 first

def _label(rec: dict) -> str:
    return rec.get("label") or rec.get("method", "?")


def _pre_posttrain_ppl(rec: dict) -> dict:
    """Perplexities without post-training: `ppl_pruned` when the case post-trained, else `ppl`."""
    return rec.get("ppl_pruned") or rec.get("ppl") or {}


# ----------------------------------------------------------------------------- seed table


# A perplexity measured on a subset of the windows (a --max-windows cap). Not "*": a note
# line starting with "* " renders as a bullet in markdown.
CAPPED_MARK = "†"


def _cap_of(v: dict) -> tuple | None:
    """(windows, of windows, tokens, of tokens) of a capped measurement; None for the full protocol."""
    windows, total, seq_len = v.get("windows"), v.get("windows_total"), v.get("seq_len")
    if windows is None or total is None or windows >= total:
        return None
    return windows, total, v.get("tokens", windows * (seq_len - 1)), total * (seq_len - 1)


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


def seed_tables(records: list[dict]) -> str:
    """One table per model in the layout of LLM-Pruner's results (no post-training).

    Columns are methods at each sequence length, rows are datasets; below each table the
    parameter counts before and after and the remaining ratio, per method. A figure measured
    on a subset of the windows carries `CAPPED_MARK`, and the note under its table gives the
    windows and tokens it saw: users paste these tables into papers.
    """
    by_model: OrderedDict[str, OrderedDict[str, dict]] = OrderedDict()
    for rec in sorted(records, key=lambda r: r["case_id"]):
        if rec.get("method") == "control":
            continue
        model = rec.get("model", {}).get("family") or rec.get("model", {}).get("spec", "?")
        key = rec.get("model", {}).get("key") or ""
        title = f"{model} {key}".strip()
        cell = by_model.setdefault(title, OrderedDict()).setdefault(
            _label(rec), {"ppl": {}, "params": rec.get("params"), "caps": {}})
        for k, v in _pre_posttrain_ppl(rec).items():
            cell["ppl"][k] = v["ppl"]
            cell["caps"][k] = _cap_of(v)
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
            p = methods[lab]["params"] or {}
            if p.get("before"):
                out.append(f"- {lab}: #Param before: {p['before']:,}, #Param after: {p['after']:,}, "
                           f"Ratio = {100 * p['after'] / p['before']:.4f}%")
        out.append("")
    return "\n".join(out).rstrip() + "\n" if out else "_No perplexity records._\n"


# ----------------------------------------------------------------------------- post-training


def _final_val_loss(rec: dict):
    traj = (rec.get("posttrain") or {}).get("trajectory") or []
    return traj[-1]["val_loss"] if traj else None


def control_improvement(rec: dict):
    """Relative drop of held-out loss over a control run's budget: (L_start - L_end) / L_start."""
    pt = rec.get("posttrain") or {}
    if "control_improvement" in pt:
        return pt["control_improvement"]
    traj = pt.get("trajectory") or []
    start = pt.get("val_loss_start", pt.get("L0"))
    if not traj or not start:
        return None
    return (start - traj[-1]["val_loss"]) / start


def recovered_fraction(dense: float | None, pruned: float | None, post: float | None):
    """Share of the perplexity lost to pruning that post-training won back, in log space."""
    if None in (dense, pruned, post) or pruned <= dense:
        return None
    return (math.log(pruned) - math.log(post)) / (math.log(pruned) - math.log(dense))


def posttrain_table(records: list[dict], eval_key: str | None = None) -> str:
    """Model, method, ratio, parameters, ppl dense / pruned / post-trained, recovery, control."""
    post = [r for r in records if r.get("posttrain")]
    if not post:
        return "_No post-training records._\n"
    if eval_key is None:
        keys = sorted({k for r in post for k in (r.get("ppl") or {})})
        eval_key = next((k for k in keys if k.startswith("wikitext2:")), keys[0] if keys else None)
    def where(r):  # one control per (family, size, recipe): the same size of two families differs
        return (r["model"].get("family", ""), r["model"].get("key"), recipe_label(recipe_config(r)))

    control = {where(r): control_improvement(r) for r in post if r.get("method") == "control"}
    rows = []
    for r in sorted(post, key=lambda r: (r["model"].get("family", ""), where(r)[2], r["params"]["before"],
                                         r.get("method") != "control", r.get("method", ""), r.get("ratio", 0))):
        dense = ((r.get("ppl_dense") or {}).get(eval_key) or {}).get("ppl")
        pruned = ((r.get("ppl_pruned") or {}).get(eval_key) or {}).get("ppl")
        final = ((r.get("ppl") or {}).get(eval_key) or {}).get("ppl")
        p = r["params"]
        status = r.get("status", "ok") + (" (diverged)" if r["posttrain"].get("diverged") else "")
        rows.append([
            f"{r['model'].get('family', '')} {r['model'].get('key', '')}".strip(), _label(r), where(r)[2],
            fmt_pct(p.get("achieved_ratio")), f"{p['before']:,}", f"{p['after']:,}",
            fmt_num(dense), fmt_num(pruned), fmt_num(final), fmt_pct(recovered_fraction(dense, pruned, final), 1),
            fmt_num(_final_val_loss(r), 4), fmt_pct(control.get(where(r)), 2), status])
    headers = ["model", "method", "recipe", "ratio", "params before", "params after", f"ppl dense ↓ ({eval_key})",
               "ppl pruned ↓", "ppl post-trained ↓", "recovered ↑", "final held-out loss ↓",
               "control improvement", "status"]
    return _table(rows, headers) + "\n"

