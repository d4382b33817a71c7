"""Tables from a run's fit.json: constants and identifiability, extrapolation, the
generalisation tests, the candidate forms and their conditions, the predicted tokens, and,
with several study seeds, every figure's spread over them.
"""

from __future__ import annotations

from fitting.optimal import EXTRAPOLATION_FACTOR
from reports.numbers import fmt_num, fmt_pct, fmt_sci, fmt_tokens
from reports.table import table as _table

def _key(g: dict) -> str:
    """A group's name ('family/method@recipe'; fit.json files without keys: 'family/method')."""
    return g.get("key", f"{g['family']}/{g['method']}")


def _label(g: dict) -> str:
    """The group's name, and its study seed when the run had several."""
    return _key(g) if g.get("seed") is None else f"{_key(g)} (seed {g['seed']})"


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
            rows.append([_label(g), g["law"], f"not fitted: {g.get('error')}",
                         "–", "–", "–", "–", "–", "–"])
            continue
        f = g["fit"]
        consts = "; ".join(_constant(g, k, v) for k, v in f["constants"].items())
        units = ", ".join(f"{k}: {u['scale']:g} {u['quantity']}" for k, u in f["units"].items())
        wr = g.get("within_run") or {}
        rows.append([_label(g), g["law"], _verdict(g), consts, units,
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
            rows.append([_label(g), size, ", ".join(g["fit_sizes"]),
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
        key = _label(g)
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


def _deltas(forms: list[dict], key: str) -> dict[str, float]:
    """Each ok form's criterion minus the group's lowest (0 marks the preferred form)."""
    vals = {f["law"]: f["criteria"][key] for f in forms if f["status"] == "ok" and f.get("criteria")}
    best = min(vals.values(), default=None)
    return {law: v - best for law, v in vals.items()}


def forms_table(fit: dict) -> str:
    """Every candidate form's fit quality (in-sample), its information criteria relative to the
    group's best form, and its errors on the held-out sizes."""
    rows = []
    for g in fit.get("groups", []):
        key = _label(g)
        forms = g.get("forms") or []
        d_aic, d_bic = _deltas(forms, "aic"), _deltas(forms, "bic")
        for f in forms:
            if f["status"] != "ok":
                rows.append([key, f"`{f['law']}`", f.get("note", ""), f"failed: {f.get('error')}"] + ["–"] * 9)
                continue
            m, h, c = f["metrics"], f.get("heldout") or {}, f.get("criteria") or {}
            rows.append([key, f"`{f['law']}`", f.get("note", ""), "ok", str(c.get("k", "–")), fmt_num(m["r2"], 4),
                         fmt_sci(m["huber"]), fmt_pct(m["mape"] / 100), fmt_sci(m.get("slope_difference")),
                         fmt_num(d_aic.get(f["law"]), 1), fmt_num(d_bic.get(f["law"]), 1),
                         _figure(h, "mape") if h else "–", _figure(h, "gap_final_worst") if h else "–"])
    if not rows:
        return "_No candidate forms compared._\n"
    return _table(rows, ["group", "form", "what differs", "fit", "k", "R² ↑", "Huber ↓", "MAPE ↓",
                         "avg slope difference ↓", "ΔAIC ↓", "ΔBIC ↓", "held-out MAPE ↓",
                         "held-out gap error, final (worst run) ↓"]) + "\n" + (
        "\nk: fitted constants. ΔAIC and ΔBIC: each form's n ln(RSS/n) + 2k (AIC) or + k ln n (BIC) on the log "
        "losses of the fitted points, minus the group's lowest; 0 is the preferred form, and a difference under "
        "about 2 does not separate two forms. The checkpoints of one run are not independent, so both penalties "
        "are milder than their textbook meaning.\n")


def conditions_table(fit: dict) -> str:
    """Which forms meet which of the four conditions, checked over the data range."""
    from_names = ("rho->0", "decreasing-in-D", "increasing-in-rho", "gap-decreasing-in-N0")
    rows = []
    for g in fit.get("groups", []):
        key = _label(g)
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


def _token_cell(t: dict, identified: bool, n0_factor: float) -> str:
    """A predicted token count, marked as an extrapolation (with its factor) when it lies more
    than `EXTRAPOLATION_FACTOR` times beyond the trained tokens or the fitted sizes."""
    if not identified:  # numbers from constants the data do not pin down say nothing
        return "fit not identified"
    if not t["reachable"]:
        return f"never ({t['reason']})"
    marks = []
    factor = t.get("tokens_factor")
    if factor is not None and factor > EXTRAPOLATION_FACTOR:
        marks.append(f"{factor:.3g}× the trained tokens")
    if n0_factor > EXTRAPOLATION_FACTOR:
        marks.append(f"N0 {n0_factor:.3g}× outside the fitted sizes")
    return fmt_tokens(t["tokens"]) + (f" (extrapolated: {', '.join(marks)})" if marks else "")


def optimal_tokens_table(fit: dict) -> str:
    rows = []
    for g in fit.get("groups", []):
        ident = _ident(g).get("identified", False)
        for o in g.get("optimal_tokens") or []:
            n0_factor = o.get("n0_factor", 1.0)
            rows.append([_label(g), o["size"], fmt_pct(o["rho"]),
                         _token_cell(o["tokens_to_margin"], ident, n0_factor),
                         _token_cell(o["tokens_to_slope"], ident, n0_factor), fmt_tokens(o["trained_tokens"])])
    if not rows:
        return "_No fitted groups._\n"
    first = next(o for g in fit["groups"] for o in g.get("optimal_tokens") or [])
    return _table(rows, ["group", "size", "ratio", f"tokens to within {fmt_pct(first['margin'], 1)} of asymptote",
                         f"tokens until gain < {first['slope_threshold']:g}/token", "tokens trained"]) + "\n" + (
        f"\nA prediction more than {EXTRAPOLATION_FACTOR:g}× beyond the tokens a run was trained on, or beyond "
        f"the fitted N0 range, lies outside the data the law saw: it is marked as an extrapolation, with its "
        f"factor, not a measurement.\n")



def _spread_cell(cell: dict, scale: float = 1.0) -> str:
    """'2.14 ± 0.31% [1.80, 2.45]': mean ± sd over seeds, with the range (– where none)."""
    if cell.get("mean") is None:
        return "–"
    sd = f" ± {fmt_num(cell['sd'] * scale)}" if cell.get("sd") is not None else ""
    return f"{fmt_num(cell['mean'] * scale)}{sd}% [{fmt_num(cell['min'] * scale)}, {fmt_num(cell['max'] * scale)}]"


def spread_table(fit: dict) -> str:
    """Every law figure as mean ± sd and [min, max] over the study seeds (fit.json's `spread`)."""
    rows = []
    for sp in fit.get("spread") or []:
        ident = f"{len(sp['identified'])} of {sp['of']} seeds"
        for test in ("larger-n0", "larger-d", "higher-rho"):
            for size, cell in sorted((sp["tests"].get(test) or {}).items()):
                r2 = cell["r2"]
                runaway = f"; run-away in seed(s) {', '.join(map(str, cell['runaway']))}" if cell["runaway"] else ""
                rows.append([sp["key"], test, size, _spread_cell(cell["mape"]), _spread_cell(cell["gap_mean"]),
                             _spread_cell(cell["gap_final"]), _spread_cell(cell["gap_final_worst"]),
                             ("–" if r2["mean"] is None else f"{fmt_num(r2['mean'], 3)}"
                              + (f" ± {fmt_num(r2['sd'], 3)}" if r2["sd"] is not None else "")
                              + f" [{fmt_num(r2['min'], 3)}, {fmt_num(r2['max'], 3)}]"), ident + runaway])
    if not rows:
        return "_One study seed: no spread to report._\n"
    return _table(rows, ["group", "test", "target", "MAPE on L ↓", "gap error, mean ↓", "gap error, final ↓",
                         "gap error, worst run ↓", "R² ↑", "identified"]) + "\n" + (
        f"\nMean ± sample standard deviation [min, max] over seeds {', '.join(map(str, fit.get('seeds') or []))}: "
        f"each seed pre-trains the zoo and post-trains again, and the law is fitted to each seed's records "
        f"alone. A run-away prediction is counted, never averaged.\n")
