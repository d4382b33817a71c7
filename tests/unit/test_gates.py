"""Gate options parse into check objects; verdicts, and gates with nothing to evaluate."""

from __future__ import annotations

import json

import pytest

from bench.errors import UsageError
from bench.studies import gates
from bench.sources.records import write_record
from bench.harness.group_fit import FitConfig, runaway
from bench.harness.law_fit import fit_law
from reports.records import Record
from synthetic_records import IDENTIFIABLE_P2, SIZES5, synthetic_records


def _rec(case_id: str, method: str = "depth", **fields) -> Record:
    return Record.from_json({"schema": "prunebench.record/2", "case_id": case_id, "status": "ok", "method": method,
                             "model": {"spec": "m"}, **fields})


@pytest.mark.parametrize(("text", "value"), [("5%", 5.0), ("0.5", 0.5), (" 2 % ".replace(" ", ""), 2.0)])
def test_parse_percent(text, value):
    assert gates.parse_percent(text, "--x") == value


@pytest.mark.parametrize("text", ["five", "-1%", "nan%"])
def test_parse_percent_rejects(text):
    with pytest.raises(UsageError, match="--x"):
        gates.parse_percent(text, "--x")


@pytest.fixture(scope="module")
def identified_study():
    """Depth identified (5 sizes of curves from constants they pin down); 2:4 not (one ratio,
    and E trades off against the size term)."""
    recs = synthetic_records(noise=0.0005, sizes=SIZES5, true_p2=IDENTIFIABLE_P2)
    return fit_law(recs, FitConfig(bootstrap=12, forms=False))


@pytest.fixture(scope="module")
def unidentified_study():
    return fit_law(synthetic_records(noise=0.001), FitConfig(bootstrap=6, forms=False))


@pytest.mark.parametrize(("text", "test", "group", "measure", "limit"), [
    ("5%", "larger-n0", None, "mape", 5.0),
    ("larger-n0:depth=2%", "larger-n0", "depth", "mape", 2.0),
    ("higher-rho:synth-llama/depth:gap=25%", "higher-rho", "synth-llama/depth", "gap", 25.0),
    ("gap=30", "larger-n0", None, "gap", 30.0),
    ("larger-d=1%", "larger-d", None, "mape", 1.0),
])
def test_scopes_parse_into_gates(text, test, group, measure, limit):
    g = gates.parse_law_scope(text)
    assert (g.test, g.group, g.measure, g.max_error) == (test, group, measure, limit)


def test_several_scopes_make_several_gates():
    built = gates.parse_gates(["larger-n0:depth=2%", "higher-rho:depth:gap=25%"]).all()
    assert [(g.test, g.measure) for g in built] == [("larger-n0", "mape"), ("higher-rho", "gap")]


def test_command_line_gates_replace_the_studys_kind_by_kind():
    study = gates.parse_gates(["larger-n0=3%"], "base", "2%", "1%")
    cli = gates.parse_gates(["larger-n0=5%"], None, None, "0.5%")
    merged = study.merged(cli)
    assert [g.max_error for g in merged.extrapolation] == [5.0]
    assert merged.ppl == study.ppl and merged.control.max_improvement == 0.5
    assert study.merged(gates.GateSet()) == study
    # Half the pair on the command line takes the other half from the study.
    half = gates.parse_gates(None, None, "4%", default_baseline="base", default_regression="2%")
    assert (half.ppl.baseline, half.ppl.max_regression) == ("base", 4.0)


def test_scope_naming_no_group_of_the_run_is_a_usage_error_listing_the_valid_ones():
    valid = ["nano-llama/depth@full-a29a8e", "nano-llama/width@full-a29a8e"]
    with pytest.raises(UsageError) as exc:
        gates.parse_gates(["larger-n0:dpeth=2%"]).check_groups(valid)
    msg = str(exc.value)
    assert "'dpeth' names no test and no group of this run (did you mean 'depth'?)" in msg
    for name in valid + ["larger-d", "larger-n0", "higher-rho", "mape", "gap"]:
        assert name in msg
    # A valid selector passes the same check; so does every form of naming a group.
    for sel in ("depth", "nano-llama/width", "nano-llama", "full-a29a8e", valid[0]):
        gates.parse_gates([f"larger-n0:{sel}=2%"]).check_groups(valid)


def test_two_groups_in_one_scope_is_a_usage_error():
    with pytest.raises(UsageError, match="already names group 'depth'"):
        gates.parse_law_scope("larger-n0:depth:width=2%")


def test_identified_group_passes_and_fails_on_its_figures(identified_study):
    ok = gates.parse_law_scope("larger-n0:depth=5%").check(identified_study)
    assert ok.passed and ok.name == "max-extrapolation-error[larger-n0:depth]"
    assert "worst synth-llama/depth@" in ok.detail and "/s5" in ok.detail
    bad = gates.parse_law_scope("larger-n0:depth=0.001%").check(identified_study)
    assert not bad.passed and "limit 0.001%" in bad.detail
    gap = gates.parse_law_scope("higher-rho:depth:gap=1000%").check(identified_study)
    assert gap.passed and "gap error at the final checkpoint" in gap.detail


def test_unidentified_group_fails_with_its_reason_unless_scoped_out(identified_study):
    everything = gates.parse_law_scope("larger-n0=1000%").check(identified_study)
    assert not everything.passed
    assert "synth-llama/nm@" in everything.detail and "not identified (" in everything.detail
    assert gates.parse_law_scope("larger-n0:depth=1000%").check(identified_study).passed


def test_three_sizes_fail_with_the_structural_reason(unidentified_study):
    verdict = gates.parse_law_scope("larger-n0:depth=1000%").check(unidentified_study)
    assert not verdict.passed and "3 sizes for 3 size parameters (n_c, alpha, delta)" in verdict.detail


def test_runaway_prediction_is_never_reported_as_a_percentage(identified_study):
    import copy

    study = copy.deepcopy(identified_study)
    g = next(g for g in study.groups if g.method == "depth")
    m = g.tests["larger-n0"]["targets"]["s5"]
    m.update(mape=1.71e35, worst_ratio=1.7e33)
    m["runaway"] = runaway(m)
    verdict = gates.parse_law_scope("larger-n0:depth=5%").check(study)
    assert not verdict.passed and "run-away prediction (off by a factor 1.7e+33" in verdict.detail
    assert "e+35%" not in verdict.detail and "1.71e+35" not in verdict.detail


def test_scope_naming_a_group_not_in_the_study_is_a_usage_error(identified_study):
    with pytest.raises(UsageError, match="group 'qwen' is not in the fit"):
        gates.parse_law_scope("larger-n0:qwen=2%").check(identified_study)


def test_extrapolation_gate_with_nothing_to_evaluate_is_a_usage_error():
    with pytest.raises(UsageError, match="no held-out model"):
        gates.ExtrapolationGate(5.0).check(None)


def _recs_with_ppl(value):
    return [_rec("c1", ppl={"wikitext2:128": {"ppl": value}, "ptb:128": {"ppl": 20.0}})]


def test_ppl_regression_gate():
    gate = gates.PplRegressionGate("base", 2.0, tuple(_recs_with_ppl(10.0)))
    assert gate.check(_recs_with_ppl(10.1)).passed  # +1%
    verdict = gate.check(_recs_with_ppl(10.5))  # +5%
    assert not verdict.passed and "+5.00%" in verdict.detail and "c1 wikitext2:128" in verdict.detail


def test_ppl_regression_with_no_shared_case_is_a_usage_error():
    gate = gates.PplRegressionGate("base", 2.0, tuple(_recs_with_ppl(10.0)))
    with pytest.raises(UsageError, match="no case of this run is in the baseline"):
        gate.check([_rec("other", ppl={"wikitext2:128": {"ppl": 1.0}})])


def test_baseline_and_regression_go_together():
    with pytest.raises(UsageError, match="go together"):
        gates.parse_gates(None, None, "2%")


def test_baseline_of_another_schema_is_refused(tmp_path):
    (tmp_path / "records").mkdir()
    (tmp_path / "records" / "x.json").write_text(json.dumps({"schema": "prunebench.record/0", "case_id": "x"}))
    with pytest.raises(UsageError, match="schema 'prunebench.record/0'"):
        gates.parse_gates(None, str(tmp_path), "2%").prepared()


def test_baseline_from_results_dir(tmp_path):
    for rec in synthetic_records()[:2]:
        write_record(tmp_path, rec)
    gate = gates.parse_gates(None, str(tmp_path), "2%").prepared().ppl
    assert len(gate.records) == 2 and gate.max_regression == 2.0


def test_missing_baseline(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        gates.parse_gates(None, str(tmp_path / "nope"), "2%").prepared()


def _control(case_id, figure):
    return _rec(case_id, "control", posttrain={"control_improvement": figure})


def test_control_gate_pass_and_fail():
    gate = gates.parse_gates(None, None, None, "1%").control
    assert gate.needs == "stored"
    ok = gate.check([_control("nano-l1-control", 0.005), _control("nano-l2-control", 0.0036), _rec("d")])
    assert ok.passed and "worst nano-l1-control 0.50% vs limit 1%" in ok.detail
    # The Qwen2 zoo read with the wrong tokenizer looked like this: its controls "improved" 7-9%.
    bad = gate.check([_control("nano-qwen2-l1-control", 0.0706), _control("nano-qwen2-l4-control", 0.0022)])
    assert not bad.passed and "worst nano-qwen2-l1-control 7.06%" in bad.detail


def test_control_gate_fails_on_a_diverged_control():
    verdict = gates.ControlGate(1.0).check([_control("a", 0.001), _control("b", float("nan"))])
    assert not verdict.passed and "worst b nan%" in verdict.detail


def test_control_gate_with_no_control_is_a_usage_error():
    with pytest.raises(UsageError, match="no control case"):
        gates.ControlGate(1.0).check([_rec("x", posttrain={})])
