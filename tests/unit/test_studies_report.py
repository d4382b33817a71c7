"""Issue 10 item 9: a figure from a capped evaluation carries its cap in the seed-layout table."""

from __future__ import annotations

from reports.record_tables import CAPPED_MARK, seed_tables
from reports.records import SCHEMA, Record


def ppl(value: float, windows: int, total: int, seq_len: int) -> dict:
    return {"ppl": value, "windows": windows, "windows_total": total, "seq_len": seq_len,
            "tokens": windows * (seq_len - 1), "max_windows": None if windows == total else windows}


def record(case_id: str, label: str, measured: dict) -> Record:
    return Record.from_json({"schema": SCHEMA, "case_id": case_id, "status": "ok", "label": label, "method": label,
                             "model": {"spec": "smollm2-135m", "family": "smollm2", "key": ""},
                             "params": {"before": 100, "after": 75}, "ppl": measured})


def test_capped_figures_are_marked_and_footnoted_full_ones_are_bare():
    records = [
        record("s-dense-w", "dense", {"wikitext2:2048": ppl(7.5, 141, 141, 2048), "wikitext2:128": ppl(53.46, 32, 2382, 128)}),
        record("s-l2-w", "blockwise-l2", {"wikitext2:2048": ppl(30.0, 2, 141, 2048), "wikitext2:128": ppl(400.0, 32, 2382, 128)}),
    ]
    text = seed_tables(records)
    row = next(line for line in text.splitlines() if line.startswith("| WikiText2"))
    cells = [c.strip() for c in row.strip("|").split("|")][1:]
    assert cells == ["7.50", f"30.00{CAPPED_MARK}", f"53.46{CAPPED_MARK}", f"400.00{CAPPED_MARK}"]
    note = next(line for line in text.splitlines() if line.startswith(f"{CAPPED_MARK} capped"))
    assert "WikiText2 at 2048: 2 of 141 windows (4,094 of 288,627 predicted tokens)" in note
    assert "WikiText2 at 128: 32 of 2,382 windows (4,064 of 302,514 predicted tokens)" in note
    assert "141 of 141" not in note  # the full-protocol figure is not in the note


def test_a_table_of_full_protocol_figures_has_no_marks():
    text = seed_tables([record("s-dense-p", "dense", {"ptb:128": ppl(80.0, 10, 10, 128)})])
    assert CAPPED_MARK not in text and "capped" not in text
