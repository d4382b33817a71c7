"""report.md: the whole report, section by section, from records, fit.json and gate verdicts.

Everything in `reports/` takes JSON-shaped data (records as stored, `fit.json` as written), so a
report can be re-rendered from disk without torch or a refit, and the output is compared
against golden files in the tests. Number formats are fixed (`reports.numbers`) and every
metric column says its direction (↑ higher is better, ↓ lower is better).
"""

from __future__ import annotations

# The tables live in `reports.record_tables` and `reports.fit_tables`, the number formats in
# `reports.numbers`; their names stay importable from here.
from reports.fit_tables import (  # noqa: F401
    conditions_table, extrapolation_table, fit_table, forms_table, optimal_tokens_table, recipes_section, tests_table)
from reports.numbers import HUGE, fmt_num, fmt_pct, fmt_sci, fmt_tokens  # noqa: F401
from reports.record_tables import (  # noqa: F401
    CAPPED_MARK, DATASET_TITLE, SEQ_ORDER, control_improvement, posttrain_table, recovered_fraction, seed_tables)
from reports.table import table as _table
from reports.zeroshot import zeroshot_section


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
