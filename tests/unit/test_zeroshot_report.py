"""The zero-shot report section: LLM-Pruner's layout with its average, capped figures marked."""

from __future__ import annotations

from reports.markdown import render_report
from reports.records import SCHEMA, Record
from reports.zeroshot import LLM_PRUNER_COLUMNS, llm_pruner_table, offline_table, zeroshot_section

# Example accuracies for the seven tasks, as lm-eval rows would carry them.
SEVEN = {"boolq": 0.7308, "piqa": 0.7797, "hellaswag": 0.7314, "winogrande": 0.6709, "arc_easy": 0.5240,
           "arc_challenge": 0.4147, "openbookqa": 0.4240}


def row(task, metric, value, samples=100, total=100, version="0.4.13"):
    return {"task": task, "metric": metric, "filter": "none", "value": value, "stderr": 0.01, "samples": samples,
            "samples_total": total, "limit": None if samples == total else samples, "task_version": 1.0,
            "lm_eval_version": version}


def record(case_id, method, label, ratio, results, **extra):
    return Record.from_json({"schema": SCHEMA, "status": "ok", "case_id": case_id, "profile": "p", "method": method,
                             "label": label, "ratio": ratio, "model": {"spec": "llama-7b", "family": "llama", "key": "7b"},
                             "ppl": {}, "zeroshot": {"results": results}, **extra})


def seven(values, drop=()):
    return [row(t, m, values[t]) for t, _, m in LLM_PRUNER_COLUMNS if t not in drop]


def test_llm_pruner_layout_and_average():
    recs = [record("a", "dense", "dense", 0.0, seven(SEVEN)),
            record("b", "blockwise", "blockwise-l2", 0.2, seven(SEVEN, drop=("piqa",)))]
    table = llm_pruner_table(recs)
    header, _, dense, pruned = table.strip().splitlines()[:4]
    assert [c.strip() for c in header.strip("|").split("|")] == [
        "Model", "Method", "Ratio", "Stage", "BoolQ", "PIQA", "HellaSwag", "WinoGrande", "ARC-e", "ARC-c", "OBQA",
        "Average"]
    cells = [c.strip() for c in dense.strip("|").split("|")]
    # Percent with two decimals, in LLM-Pruner's column order; the average is the plain mean.
    assert cells[4:] == ["73.08", "77.97", "73.14", "67.09", "52.40", "41.47", "42.40", "61.08"]
    cells = [c.strip() for c in pruned.strip("|").split("|")]
    assert cells[5] == "–" and cells[-1] == "–"  # no average over six of the seven tasks
    assert "capped" not in table


def test_capped_figures_are_marked_and_explained():
    results = [row("wikitext", "word_perplexity", 20.76, 1, 62), row("wikitext", "bits_per_byte", 0.84, 1, 62),
               row("wikitext_lastword", "acc", 0.2917, 24, 1306), row("wikitext_lastword", "perplexity", 49.68, 24, 1306)]
    table = offline_table([record("a", "dense", "dense", 0.0, results)])
    assert "| 20.76*" in table and "| 29.17*" in table
    assert "wikitext: first 1 of 62 documents" in table and "wikitext_lastword: first 24 of 1306 documents" in table
    assert "\n\\* capped: computed on a subset" in table  # escaped, so markdown shows a note, not a list


def test_post_trained_case_has_a_row_per_stage():
    before = [row("wikitext_lastword", "acc", 0.10), row("wikitext_lastword", "perplexity", 900.0)]
    after = [row("wikitext_lastword", "acc", 0.20), row("wikitext_lastword", "perplexity", 300.0)]
    rec = record("a", "depth", "depth", 0.25, after, zeroshot_pruned={"results": before})
    lines = offline_table([rec]).strip().splitlines()
    assert "| pruned " in lines[2] and "10.00" in lines[2] and "900.00" in lines[2]
    assert "| post-trained " in lines[3] and "20.00" in lines[3] and "300.00" in lines[3]


def test_section_only_when_records_have_zero_shot():
    assert zeroshot_section([Record.from_json({"schema": SCHEMA, "case_id": "x", "status": "ok", "method": "dense",
                                               "model": {"spec": "m"}, "ppl": {}})]) == ""
    recs = [record("a", "dense", "dense", 0.0, seven(SEVEN))]
    report = render_report(recs, None)
    assert "## Zero-shot (lm-eval)" in report and "lm-eval 0.4.13, 0-shot" in report
    assert report.index("## Zero-shot") < report.index("## Gates")
