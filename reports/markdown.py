"""report.md: the whole report, section by section, from records, fit.json and gate verdicts.

Everything in `reports/` renders from what a run leaves on disk: the records (parsed once into
`reports.records.Record`) and `fit.json` as written, so a report can be re-rendered without
torch or a refit, and the output is compared against golden files in the tests. Number formats
are fixed (`reports.numbers`) and every metric column says its direction (↑ higher is better,
↓ lower is better). The tables live in `reports.record_tables` and `reports.fit_tables`.
"""

from __future__ import annotations

from reports.fit_tables import (conditions_table, extrapolation_table, fit_table, forms_table, optimal_tokens_table,
                                recipes_section, spread_table, tests_table)
from reports.recipe_tables import comparison_section
from reports.record_tables import posttrain_table, seed_tables
from reports.records import Record
from reports.table import table as _table
from reports.zeroshot import zeroshot_section


def gates_section(verdicts: list[dict]) -> str:
    if not verdicts:
        return "_No gates configured._\n"
    rows = [[v["name"], "PASS" if v["passed"] else "FAILED", v["detail"]] for v in verdicts]
    return _table(rows, ["gate", "verdict", "detail"]) + "\n"


def render_report(records: list[Record], fit: dict | None, verdicts: list[dict] | None = None,
                  plots: list[str] | None = None) -> str:
    """The whole report.md."""
    parts = ["# prunebench report", ""]
    profiles = sorted({r.profile or "?" for r in records})
    parts += [f"{len(records)} records (profiles: {', '.join(profiles) or '–'}).", ""]
    parts += ["## Perplexity without post-training (LLM-Pruner layout)", "", seed_tables(records)]
    if any(r.posttrain is not None for r in records):
        parts += ["## Post-training", "", posttrain_table(records)]
    if fit is not None:
        parts += [f"## Scaling law fit (`{fit['law']}`)", "", "Post-training recipes:", "", recipes_section(fit),
                  fit_table(fit),
                  "## Extrapolation to held-out models", "", extrapolation_table(fit)]
        if fit.get("spread"):
            parts += ["## Spread over study seeds", "", spread_table(fit)]
        parts += ["## Generalisation tests", "", tests_table(fit),
                  "## Candidate forms", "", forms_table(fit),
                  "## Conditions a law must meet", "", conditions_table(fit),
                  "## Predicted post-training tokens", "", optimal_tokens_table(fit)]
        compared = comparison_section(fit.get("recipes"))
        if compared:
            parts += [compared]
    zeroshot = zeroshot_section(records)
    if zeroshot:
        parts += [zeroshot]
    parts += ["## Gates", "", gates_section(verdicts or [])]
    if plots:
        parts += ["## Plots", ""] + [f"![{p}]({p})" for p in plots] + [""]
    return "\n".join(parts).rstrip() + "\n"
