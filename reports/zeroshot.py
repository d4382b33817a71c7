"""Zero-shot tables from records' ``zeroshot`` entries (written by `bench.evaluation.zeroshot`).

Two tables: LLM-Pruner's zero-shot layout (its seven tasks in its column order, accuracy in
percent with its metric per task, and their average), and the shipped offline tasks. A figure
computed on a capped subset of a task's documents is marked, and the note under the table
says how many documents it saw; an average over a row with a task missing is not given.
A post-trained case contributes a row before post-training and one after.
"""

from __future__ import annotations

from reports.records import Record, ZeroShotRow
from reports.table import table

# LLM-Pruner's columns: (task, title, metric).
LLM_PRUNER_COLUMNS = (
    ("boolq", "BoolQ", "acc"), ("piqa", "PIQA", "acc"), ("hellaswag", "HellaSwag", "acc_norm"),
    ("winogrande", "WinoGrande", "acc"), ("arc_easy", "ARC-e", "acc"), ("arc_challenge", "ARC-c", "acc_norm"),
    ("openbookqa", "OBQA", "acc_norm"),
)
# The offline tasks' columns: (task, title, metric, scale). Accuracy in percent, like LLM-Pruner's.
OFFLINE_COLUMNS = (
    ("wikitext", "WikiText word ppl ↓", "word_perplexity", 1.0),
    ("wikitext", "WikiText bits/byte ↓", "bits_per_byte", 1.0),
    ("wikitext_lastword", "last-word acc % ↑", "acc", 100.0),
    ("wikitext_lastword", "last-word ppl ↓", "perplexity", 1.0),
)
CAP_MARK = "*"


def _cell(row: ZeroShotRow | None, scale: float, caps: dict) -> str:
    if row is None or isinstance(row.value, bool) or not isinstance(row.value, (int, float)):
        return "–"
    if row.capped:
        caps[row.task] = (row.samples, row.samples_total)
    value = row.value * scale
    text = f"{value:.2f}" if abs(value) < 1e6 else f"{value:.3g}"
    return text + (CAP_MARK if row.capped else "")


def _ident(rec: Record) -> list[str]:
    return [rec.model.title, rec.name, f"{rec.ratio:g}" if rec.ratio else "0"]


def _order(records: list[Record]) -> list[Record]:
    return sorted(records, key=lambda r: (r.model.family or "", r.model.key or "", not r.unpruned, r.case_id))


def _cap_note(caps: dict) -> str:
    if not caps:
        return ""
    parts = [f"{task}: first {k} of {n} documents" for task, (k, n) in sorted(caps.items())]
    # Escaped: a line that starts with a bare "*" is a markdown list item.
    return f"\n\\{CAP_MARK} capped: computed on a subset ({'; '.join(parts)}); not comparable to full-task figures.\n"


def _stage_table(records: list[Record], columns, titles: list[str], cells_of) -> str:
    """One row per (record, stage) that measured any of `columns` ((task, metric) pairs), with
    the cells `cells_of(results by (task, metric), caps)` gives; "" when no row has any."""
    caps: dict = {}
    rows = []
    for rec in _order(records):
        for stage, run in rec.zeroshot_stages():
            have = run.by_metric()
            if any(c in have for c in columns):
                rows.append(_ident(rec) + [stage] + cells_of(have, caps))
    if not rows:
        return ""
    return table(rows, ["Model", "Method", "Ratio", "Stage"] + titles) + "\n" + _cap_note(caps)


def llm_pruner_table(records: list[Record]) -> str:
    """LLM-Pruner's zero-shot table: accuracy (%) per task with its metric, and the average."""

    def cells_of(have: dict, caps: dict) -> list[str]:
        cells = [_cell(have.get((t, m)), 100.0, caps) for t, _, m in LLM_PRUNER_COLUMNS]
        values = [have[(t, m)].value for t, _, m in LLM_PRUNER_COLUMNS if (t, m) in have]
        average = f"{100 * sum(values) / len(values):.2f}" if len(values) == len(LLM_PRUNER_COLUMNS) else "–"
        if average != "–" and any(c.endswith(CAP_MARK) for c in cells):
            average += CAP_MARK
        return cells + [average]

    return _stage_table(records, [(t, m) for t, _, m in LLM_PRUNER_COLUMNS],
                        [title for _, title, _ in LLM_PRUNER_COLUMNS] + ["Average"], cells_of)


def offline_table(records: list[Record]) -> str:
    """The shipped offline tasks: WikiText document-level perplexity and the last-word task."""
    return _stage_table(records, [(t, m) for t, _, m, _ in OFFLINE_COLUMNS],
                        [title for _, title, _, _ in OFFLINE_COLUMNS],
                        lambda have, caps: [_cell(have.get((t, m)), s, caps) for t, _, m, s in OFFLINE_COLUMNS])


def zeroshot_section(records: list[Record]) -> str:
    """The report's zero-shot section (markdown), or "" when no record has zero-shot results."""
    with_zs = [r for r in records if r.zeroshot_stages()]
    if not with_zs:
        return ""
    parts = ["## Zero-shot (lm-eval)", ""]
    versions = sorted({row.lm_eval_version for r in with_zs for _, run in r.zeroshot_stages()
                       for row in run.results if row.lm_eval_version})
    parts += [f"lm-eval {', '.join(versions) or '?'}, 0-shot, in memory.", ""]
    table = llm_pruner_table(with_zs)
    if table:
        parts += ["### LLM-Pruner tasks (accuracy %, acc or acc_norm as LLM-Pruner reports them)", "", table]
    table = offline_table(with_zs)
    if table:
        parts += ["### Offline tasks (WikiText-2 raw test)", "", table]
    return "\n".join(parts).rstrip() + "\n"
