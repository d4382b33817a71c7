"""Markdown tables from records and fit results: pure functions, plain dicts in, text out.

Everything here takes JSON-shaped data (records as stored, `fit.json` as written), so a
report can be re-rendered from disk without torch or a refit, and the output is compared
against golden files in the tests. Number formats are fixed and every metric column says
its direction (↑ higher is better, ↓ lower is better).
"""

from __future__ import annotations

import math
from collections import OrderedDict

from tabulate import tabulate

from reports.zeroshot import zeroshot_section

DATASET_TITLE = {"wikitext2": "WikiText2", "ptb": "PTB"}
SEQ_ORDER = (2048, 128)  # the seed table shows 2048 first


HUGE = 1e9  # beyond this a number is printed as mantissa and exponent


def fmt_num(x, digits: int = 2) -> str:
    if x is None:
        return "–"
    if isinstance(x, str):
        return x
    if not math.isfinite(x):
        return "inf" if x > 0 else ("-inf" if x < 0 else "nan")
    if abs(x) >= HUGE:
        return f"{x:.3g}"  # a run-away fit: 36 digits of it say nothing more than the exponent
    return f"{x:,.{digits}f}"


def fmt_sci(x) -> str:
    if x is None:
        return "–"
    if isinstance(x, str) or not math.isfinite(x):
        return str(x)
    return f"{x:.4g}"


def fmt_pct(x, digits: int = 2) -> str:
    """A fraction as a percentage (0.0123 -> '1.23%'); absurd values in scientific notation."""
    if x is None:
        return "–"
    pct = 100 * x
    if math.isfinite(pct) and abs(pct) >= HUGE:
        return f"{pct:.3g}%"
    return f"{pct:.{digits}f}%"


def fmt_tokens(x) -> str:
    if x is None:
        return "–"
    for unit, scale in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{unit}"
    return f"{x:.3g}"


def _table(rows, headers) -> str:
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


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
    from bench.harness.study import recipe_config, recipe_label

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


# ----------------------------------------------------------------------------- fit tables


def _ident(g: dict) -> dict:
    return g.get("identifiability") or {}


def _verdict(g: dict) -> str:
    ident = _ident(g)
    if ident.get("identified"):
        return "identified"
    return "not identified: " + "; ".join(ident.get("reasons") or ["no verdict"])


def _constant(g: dict, name: str, value: float) -> str:
    """One constant: its value and interval when identified, else 'not identified' and why."""
    c = _ident(g).get("constants", {}).get(name)
    if c is None:
        return f"{name}: not assessed (no bootstrap interval)"
    lo, hi = c["interval"]
    if not c["identified"]:
        return f"{name}: not identified (CI [{fmt_sci(lo)}, {fmt_sci(hi)}])"
    return f"{name}={fmt_sci(value)} [{fmt_sci(lo)}, {fmt_sci(hi)}]"


def recipes_section(fit: dict) -> str:
    """Which post-training recipe each label names (groups never mix recipes)."""
    seen = {}
    for g in fit.get("groups", []):
        seen.setdefault(g.get("recipe", "unrecorded"), g.get("recipe_summary", "not recorded"))
    return "\n".join(f"- `{k}`: {v}" for k, v in sorted(seen.items())) + "\n"


def fit_table(fit: dict) -> str:
    """Fitted constants with bootstrap intervals and identifiability, and the fit's metrics, per group."""
    rows = []
    for g in fit.get("groups", []):
        if g.get("fit") is None:
            rows.append([g.get("key", f"{g['family']}/{g['method']}"), g["law"], f"not fitted: {g.get('error')}",
                         "–", "–", "–", "–", "–", "–"])
            continue
        f = g["fit"]
        consts = "; ".join(_constant(g, k, v) for k, v in f["constants"].items())
        units = ", ".join(f"{k}: {u['scale']:g} {u['quantity']}" for k, u in f["units"].items())
        wr = g.get("within_run") or {}
        rows.append([g.get("key", f"{g['family']}/{g['method']}"), g["law"], _verdict(g), consts, units,
                     f"{f['n_runs']}/{f['n_points']}", fmt_sci(f["objective"]), fmt_num(wr.get("r2"), 4),
                     fmt_pct(None if wr.get("mape") is None else wr["mape"] / 100)])
    level = next((g["bootstrap"]["level"] for g in fit.get("groups", []) if g.get("bootstrap")), None)
    ci = f" [{100 * level:.0f}% CI, runs resampled]" if level else ""
    headers = ["group", "law", "identifiability", f"constants{ci}", "units", "runs/points", "Huber objective ↓",
               "within-run R² ↑", "within-run MAPE ↓"]
    text = _table(rows, headers) + "\n"
    crit = fit.get("identifiability_criterion")
    search = next((g.get("search") for g in fit.get("groups", []) if g.get("search")), None)
    notes = []
    if crit:
        notes.append(f"A constant is identified when its {crit}.")
    if search:
        notes.append(f"Search: {search['starts']} starts ({search['grid']} grid), {search['n_polish']} polished; "
                     f"each of the {search['bootstrap_replicates']} bootstrap replicates is searched the same way "
                     "(no warm start).")
        checked = [g for g in fit.get("groups", []) if "coarse_reaches_full" in (g.get("search") or {})]
        missed = [g.get("key", g["family"]) for g in checked if not g["search"]["coarse_reaches_full"]]
        if checked:
            notes.append("The full grid, tried once per group, found no better optimum." if not missed else
                         f"The full grid found a better optimum than the coarse search for {', '.join(missed)}: "
                         "their intervals come from a search that is too small (re-render with --search full).")
    return text + ("\n" + " ".join(notes) + "\n" if notes else "")


def _figure(m: dict, key: str) -> str:
    """A test figure (percent), or why it is not a measurement."""
    if m.get("runaway"):
        return "run-away"
    v = m.get(key)
    if v is None and key.startswith("gap") and m.get("gap_nonpositive"):
        return "– (L ≤ L0)"  # no gap to be relative to at the checkpoints concerned
    return "–" if v is None else fmt_pct(v / 100)


def extrapolation_table(fit: dict) -> str:
    rows = []
    for g in fit.get("groups", []):
        for size, m in (g.get("extrapolation") or {}).items():
            rows.append([g.get("key", f"{g['family']}/{g['method']}"), size, ", ".join(g["fit_sizes"]),
                         _figure(m, "extrapolation_error"), _figure(m, "gap_final_worst"),
                         fmt_num(m["r2"], 4) if not m.get("runaway") else "–", fmt_sci(m["huber"]),
                         fmt_sci(m.get("slope_difference")), _verdict(g) + (f"; {m['runaway']}" if m.get("runaway") else "")])
    if not rows:
        return "_No held-out models to extrapolate to._\n"
    return _table(rows, ["group", "held-out size", "fitted on", "extrapolation error (MAPE) ↓",
                         "gap error, final (worst run) ↓", "R² ↑", "Huber ↓", "avg slope difference ↓", "fit"]) + "\n"


def tests_table(fit: dict) -> str:
    """The three generalisation tests per group, each target with MAPE on L and the gap errors."""
    rows = []
    for g in fit.get("groups", []):
        key = g.get("key", f"{g['family']}/{g['method']}")
        for name in ("larger-d", "larger-n0", "higher-rho"):
            t = (g.get("tests") or {}).get(name)
            if t is None:
                continue
            if t.get("error"):
                rows.append([key, name, t.get("fit_on", ""), "–", f"not run: {t['error']}", "–", "–", "–"])
                continue
            for size, m in t["targets"].items():
                rows.append([key, name, t["fit_on"], size, _figure(m, "mape"), _figure(m, "gap_mean"),
                             _figure(m, "gap_final"), _figure(m, "gap_final_worst")])
    if not rows:
        return "_No generalisation tests._\n"
    return _table(rows, ["group", "test", "fitted on", "predicted", "MAPE on L ↓", "gap error, mean ↓",
                         "gap error, final ↓", "gap error, final (worst run) ↓"]) + "\n" + (
        "\nGap error: |predicted - measured| / (measured - L0) at each checkpoint, L0 the unpruned loss; "
        "'final' is the mean over the predicted runs of their last checkpoint; checkpoints at or below L0 "
        "(L ≤ L0) have no gap and are left out. 'run-away' marks a prediction "
        "off by more than a factor "
        f"{fit.get('runaway_factor', 10):g} somewhere, which is not a measured error.\n")


_MARK = {True: "yes", False: "no", None: "n/a"}


def forms_table(fit: dict) -> str:
    """Every candidate form's fit quality (in-sample) and its errors on the held-out sizes."""
    rows = []
    for g in fit.get("groups", []):
        key = g.get("key", f"{g['family']}/{g['method']}")
        for f in g.get("forms") or []:
            if f["status"] != "ok":
                rows.append([key, f"`{f['law']}`", f.get("note", ""), f"failed: {f.get('error')}", "–", "–", "–", "–", "–", "–"])
                continue
            m, h = f["metrics"], f.get("heldout") or {}
            rows.append([key, f"`{f['law']}`", f.get("note", ""), "ok", fmt_num(m["r2"], 4), fmt_sci(m["huber"]),
                         fmt_pct(m["mape"] / 100), fmt_sci(m.get("slope_difference")),
                         _figure(h, "mape") if h else "–", _figure(h, "gap_final_worst") if h else "–"])
    if not rows:
        return "_No candidate forms compared._\n"
    return _table(rows, ["group", "form", "what differs", "fit", "R² ↑", "Huber ↓", "MAPE ↓", "avg slope difference ↓",
                         "held-out MAPE ↓", "held-out gap error, final (worst run) ↓"]) + "\n"


def conditions_table(fit: dict) -> str:
    """Which forms meet which of the four conditions, checked over the data range."""
    from_names = ("rho->0", "decreasing-in-D", "increasing-in-rho", "gap-decreasing-in-N0")
    rows = []
    for g in fit.get("groups", []):
        key = g.get("key", f"{g['family']}/{g['method']}")
        for f in g.get("forms") or []:
            if f["status"] != "ok":
                rows.append([key, f"`{f['law']}`"] + ["failed"] * len(from_names))
                continue
            c = f.get("conditions") or {}
            rows.append([key, f"`{f['law']}`"] + [_MARK[(c.get(n) or {}).get("met")] for n in from_names])
    if not rows:
        return "_No candidate forms compared._\n"
    return _table(rows, ["group", "form", "L → L0 as ρ → 0", "L decreases with D", "L increases with ρ",
                         "L − L0 decreases with N0"]) + "\n" + (
        "\nChecked on a grid over the fitted N0, D and ρ (L0 at the runs' median); ρ → 0 down to 1e-12, where the "
        "gap must fall at every step to below 1% of its value at the smallest fitted ρ. n/a: the data do not vary "
        "that input.\n")


def optimal_tokens_table(fit: dict) -> str:
    rows = []
    for g in fit.get("groups", []):
        ident = _ident(g).get("identified", False)
        for o in g.get("optimal_tokens") or []:
            tm, ts = o["tokens_to_margin"], o["tokens_to_slope"]

            def cell(t):
                if not ident:  # numbers from constants the data do not pin down say nothing
                    return "fit not identified"
                return fmt_tokens(t["tokens"]) if t["reachable"] else f"never ({t['reason']})"

            rows.append([g.get("key", f"{g['family']}/{g['method']}"), o["size"], fmt_pct(o["rho"]),
                         cell(tm), cell(ts), fmt_tokens(o["trained_tokens"])])
    if not rows:
        return "_No fitted groups._\n"
    first = next(o for g in fit["groups"] for o in g.get("optimal_tokens") or [])
    return _table(rows, ["group", "size", "ratio", f"tokens to within {fmt_pct(first['margin'], 1)} of asymptote",
                         f"tokens until gain < {first['slope_threshold']:g}/token", "tokens trained"]) + "\n"


def gates_section(verdicts: list[dict]) -> str:
    if not verdicts:
        return "_No gates configured._\n"
    rows = [[v["name"], "PASS" if v["passed"] else "FAILED", v["detail"]] for v in verdicts]
    return _table(rows, ["gate", "verdict", "detail"]) + "\n"


def render_report(records: list[dict], fit: dict | None, verdicts: list[dict] | None = None,
                  plots: list[str] | None = None) -> str:
    """The whole report.md."""
    parts = ["# prunebench report", ""]
    profiles = sorted({r.get("profile", "?") for r in records})
    parts += [f"{len(records)} records (profiles: {', '.join(profiles) or '–'}).", ""]
    parts += ["## Perplexity without post-training (LLM-Pruner layout)", "", seed_tables(records)]
    if any(r.get("posttrain") for r in records):
        parts += ["## Post-training", "", posttrain_table(records)]
    if fit is not None:
        parts += [f"## Scaling law fit (`{fit['law']}`)", "", "Post-training recipes:", "", recipes_section(fit),
                  fit_table(fit),
                  "## Extrapolation to held-out models", "", extrapolation_table(fit),
                  "## Generalisation tests", "", tests_table(fit),
                  "## Candidate forms", "", forms_table(fit),
                  "## Conditions a law must meet", "", conditions_table(fit),
                  "## Predicted post-training tokens", "", optimal_tokens_table(fit)]
    zeroshot = zeroshot_section(records)
    if zeroshot:
        parts += [zeroshot]
    parts += ["## Gates", "", gates_section(verdicts or [])]
    if plots:
        parts += ["## Plots", ""] + [f"![{p}]({p})" for p in plots] + [""]
    return "\n".join(parts).rstrip() + "\n"
