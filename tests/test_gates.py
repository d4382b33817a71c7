"""Gate options parse into check objects; verdicts, and gates with nothing to evaluate."""

from __future__ import annotations

import json

import pytest

from bench import gates
from bench.errors import UsageError
from bench.records import write_record
from bench.study import StudyConfig, run_study
from synthetic_records import synthetic_records


@pytest.mark.parametrize(("text", "value"), [("5%", 5.0), ("0.5", 0.5), (" 2 % ".replace(" ", ""), 2.0)])
def test_parse_percent(text, value):
    assert gates.parse_percent(text, "--x") == value


@pytest.mark.parametrize("text", ["five", "-1%", "nan%"])
def test_parse_percent_rejects(text):
    with pytest.raises(UsageError, match="--x"):
        gates.parse_percent(text, "--x")


def test_extrapolation_gate_pass_and_fail():
    study = run_study(synthetic_records(noise=0.001), StudyConfig(bootstrap=0))
    ok = gates.ExtrapolationGate(5.0).check(study)
    bad = gates.ExtrapolationGate(0.001).check(study)
    assert ok.passed and not bad.passed
    assert "synth-llama/depth/s4" in bad.detail and "limit 0.001%" in bad.detail


def test_extrapolation_gate_with_nothing_to_evaluate_is_a_usage_error():
    with pytest.raises(UsageError, match="no held-out model"):
        gates.ExtrapolationGate(5.0).check(None)


def _recs_with_ppl(value):
    return [{"case_id": "c1", "ppl": {"wikitext2:128": {"ppl": value}, "ptb:128": {"ppl": 20.0}}}]


def test_ppl_regression_gate():
    gate = gates.PplRegressionGate(tuple(_recs_with_ppl(10.0)), 2.0, "base")
    assert gate.check(_recs_with_ppl(10.1)).passed  # +1%
    verdict = gate.check(_recs_with_ppl(10.5))  # +5%
    assert not verdict.passed and "+5.00%" in verdict.detail and "c1 wikitext2:128" in verdict.detail


def test_ppl_regression_with_no_shared_case_is_a_usage_error():
    gate = gates.PplRegressionGate(tuple(_recs_with_ppl(10.0)), 2.0, "base")
    with pytest.raises(UsageError, match="no case of this run is in the baseline"):
        gate.check([{"case_id": "other", "ppl": {"wikitext2:128": {"ppl": 1.0}}}])


def test_baseline_and_regression_go_together():
    with pytest.raises(UsageError, match="go together"):
        gates.build_gates(None, None, "2%")


def test_baseline_of_another_schema_is_refused(tmp_path):
    (tmp_path / "records").mkdir()
    (tmp_path / "records" / "x.json").write_text(json.dumps({"schema": "prunebench.record/0", "case_id": "x"}))
    with pytest.raises(UsageError, match="schema 'prunebench.record/0'"):
        gates.build_gates(None, str(tmp_path), "2%")


def test_baseline_from_results_dir(tmp_path):
    for rec in synthetic_records()[:2]:
        write_record(tmp_path, rec)
    (gate,) = gates.build_gates(None, str(tmp_path), "2%")
    assert len(gate.baseline) == 2 and gate.max_regression == 2.0


def test_missing_baseline(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        gates.build_gates(None, str(tmp_path / "nope"), "2%")


def _control(case_id, figure):
    return {"case_id": case_id, "method": "control", "posttrain": {"control_improvement": figure}}


def test_control_gate_pass_and_fail():
    gate = gates.build_gates(None, None, None, "1%")[0]
    assert gate.needs == "stored"
    ok = gate.check([_control("nano-l1-control", 0.005), _control("nano-l2-control", 0.0036), {"method": "depth"}])
    assert ok.passed and "worst nano-l1-control 0.50% vs limit 1%" in ok.detail
    # The Qwen2 zoo read with the wrong tokenizer looked like this: its controls "improved" 7-9%.
    bad = gate.check([_control("nano-qwen2-l1-control", 0.0706), _control("nano-qwen2-l4-control", 0.0022)])
    assert not bad.passed and "worst nano-qwen2-l1-control 7.06%" in bad.detail


def test_control_gate_fails_on_a_diverged_control():
    verdict = gates.ControlGate(1.0).check([_control("a", 0.001), _control("b", float("nan"))])
    assert not verdict.passed and "worst b nan%" in verdict.detail


def test_control_gate_with_no_control_is_a_usage_error():
    with pytest.raises(UsageError, match="no control case"):
        gates.ControlGate(1.0).check([{"case_id": "x", "method": "depth", "posttrain": {}}])
