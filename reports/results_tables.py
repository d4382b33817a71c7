"""The measured tables of a results page (`reports.results_page`), from one run's records and
fit.json (never typed by hand):

* the zoo: each base's shape, parameters, embedding share, pre-training time, base held-out
  loss (L0) and control improvement;
* recovery: per case, the held-out loss after pruning and after post-training, and the share of
  the gap to L0 won back;
* extrapolation: per fitted group (and study seed) and held-out size, MAPE on L beside the error
  on the gap L - L0, the worst run's too; with several seeds, the spread over them follows
  (`reports.fit_tables.spread_table`).

Pure functions of their inputs, like the rest of `reports/`.
"""

from __future__ import annotations

from reports.numbers import fmt_num, fmt_pct
from reports.records import Record
from reports.table import table as _table


def _posttrained(records: list[Record]) -> list[Record]:
    return [r for r in records if r.posttrain is not None and r.posttrain.trajectory and r.ok]


def zoo_table(records: list[Record]) -> str:
    """One row per (family, size), from its control case (the unpruned base, post-trained)."""
    rows = []
    for r in sorted((r for r in _posttrained(records) if r.method == "control"),
                    key=lambda r: (r.model.family or "", r.params.before)):
        m, p, pt = r.model, r.params, r.posttrain
        info = m.info or {}
        ne = p.non_embedding_before or m.non_embedding_params
        share = 1 - ne / p.before if ne else None
        wall = info.get("pretrain_wall_s")
        rows.append([f"`{m.spec}`", f"{m.hidden_size} × {m.layers}", f"{p.before:,}",
                     f"{ne:,}" if ne else "–", fmt_pct(share), fmt_num(info.get("pretrain_tokens"), 0),
                     f"{wall:.0f} s" if wall else "–", f"{pt.L0:.4f}", fmt_pct(pt.control_improvement)])
    if not rows:
        return "_No control cases: the zoo table needs the post-trained unpruned bases._"
    return _table(rows, ["base", "hidden × layers", "params", "non-embedding", "embedding share",
                         "pre-training tokens", "pre-training wall", "base held-out loss L0",
                         "control improvement"])


def recovery_table(records: list[Record]) -> str:
    """Held-out loss after pruning -> after post-training, and the share of the gap to L0 won back."""
    rows = []
    for r in sorted((r for r in _posttrained(records) if r.method != "control"),
                    key=lambda r: (r.model.family or "", r.params.before, r.label or "", r.ratio or 0)):
        pt = r.posttrain
        l0, start, end = pt.L0, pt.initial_val_loss, pt.final
        won = (start - end) / (start - l0) if start is not None and start > l0 else None
        rows.append([f"`{r.case_id}`", fmt_pct(pt.rho), f"{l0:.4f}",
                     f"{start:.4f}" if start is not None else "–", f"{end:.4f}", fmt_pct(won)])
    return _table(rows, ["case", "achieved ratio", "L0", "after pruning", "after post-training",
                         "gap won back"]) if rows else "_No post-trained pruned cases._"


def extrapolation_table(fit: dict | None) -> str:
    """MAPE on L beside the error on the recovery gap, for every held-out size of every group."""
    def pct(m, key):
        # A run-away prediction is never shown as a measurement (issue 11).
        if m.get("runaway"):
            return "run-away"
        return fmt_pct(m[key] / 100) if m.get(key) is not None else "–"

    rows = []
    for g in (fit or {}).get("groups", []):
        key = (g.get("key") or f"{g.get('family')}/{g.get('method')}") + \
            ("" if g.get("seed") is None else f" (seed {g['seed']})")
        ident = g.get("identifiability") or {}
        verdict = "yes" if ident.get("identified") else "no: " + "; ".join(ident.get("reasons") or ["no verdict"])
        for size, m in sorted((g.get("extrapolation") or {}).items()):
            rows.append([key, ", ".join(g.get("fit_sizes", [])), size, pct(m, "mape"), pct(m, "gap_mean"),
                         pct(m, "gap_final"), pct(m, "gap_final_worst"), verdict])
    if not rows:
        return "_No held-out size was predicted._"
    return _table(rows, ["group", "fit sizes", "held out", "MAPE on L", "gap error, mean",
                         "gap error, final checkpoint", "gap error, final, worst run", "fit identified"])
