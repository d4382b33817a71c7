"""The report stage of the plugin, in process: records in, report out, gates and the exit status.

Each test runs the plugin's hooks (`plugin_helpers`) on a results directory already holding
post-training records, plus one tiny case this run "ran" (its record, computed once for the
module). A failed gate failing a real `pytest bench` is in tests/e2e/test_smoke_profile.py.
"""

from __future__ import annotations

import fnmatch
import json

import pytest

from bench.harness.session import CaseOutcome
from bench.sources.records import write_record
from plugin_helpers import configured, session_finish, session_of, summary, usage_error
from reports.records import Record
from synthetic_records import IDENTIFIABLE_P2, SIZES5, edited, synthetic_records

CASE = "tiny-llama-dense-ptb-128"


@pytest.fixture(scope="module")
def tiny_record(data_dir, tmp_path_factory):
    """The record of `CASE`, run once: each test puts it in its results directory as this run's case."""
    from bench.env import RunEnv
    from bench.harness.run_config import CommandLine
    from bench.harness.session import BenchSession

    root = tmp_path_factory.mktemp("tiny-run")
    session = BenchSession(CommandLine(study="tiny", report=False),
                           RunEnv.make(data_dir=data_dir, results_dir=root / "r", cache_dir=root / "c"))
    case = next(c for c in session.cases() if c.id == CASE)
    return case, session.run_case(case)


def finish(results, tiny_record, *options):
    """The end of a `pytest bench --profile tiny -k "llama and ptb"` run on `results`.

    Returns (exit status, summary lines).
    """
    case, rec = tiny_record
    write_record(results, rec)
    with configured("--profile", "tiny", f"--results-dir={results}", *options) as config:
        session_of(config).outcomes.append(CaseOutcome(case, rec))
        status = session_finish(config)
        return status, summary(config)


def match(lines: list[str], *patterns: str) -> None:
    """Each fnmatch pattern matches some line (pytester's fnmatch_lines, without the order)."""
    for pattern in patterns:
        assert any(fnmatch.fnmatch(line, pattern) for line in lines), (pattern, lines)


@pytest.fixture
def seeded(monkeypatch, tmp_path):
    """A results directory already holding post-training records."""
    monkeypatch.setenv("PRUNEBENCH_BOOTSTRAP", "6")  # the session's study: few replicates keep these tests fast
    results = tmp_path / "results"
    for rec in synthetic_records(noise=0.001):
        write_record(results, rec)
    return results


def test_report_plots_and_fit_json_are_written(seeded, tiny_record):
    status, lines = finish(seeded, tiny_record)
    assert status == pytest.ExitCode.OK
    match(lines, "*extrapolation to held-out synth-llama/depth@full-*/s4: MAPE *%*", "report: *report.md")
    report = (seeded / "report.md").read_text()
    assert "## Scaling law fit (`p2`)" in report and "synth-llama/nm" in report and "tiny-llama" in report
    for heading in ("## Generalisation tests", "## Candidate forms", "## Conditions a law must meet"):
        assert heading in report
    assert "not identified" in report  # 3 fit sizes cannot identify the 3 size parameters
    assert (seeded / "fit.json").is_file()
    for png in ("loss_synth-llama_depth.png", "loss_synth-llama_nm.png", "heldout_synth-llama_depth.png"):
        assert (seeded / png).read_bytes()[:4] == b"\x89PNG"


@pytest.fixture
def seeded_identified(monkeypatch, tmp_path):
    """Records of five sizes whose depth fit is identified (and a 2:4 group that is not)."""
    monkeypatch.setenv("PRUNEBENCH_BOOTSTRAP", "12")
    results = tmp_path / "results"
    for rec in synthetic_records(noise=0.0005, sizes=SIZES5, true_p2=IDENTIFIABLE_P2):
        write_record(results, rec)
    return results


def test_scoped_extrapolation_gate_passes_on_the_identified_group(seeded_identified, tiny_record):
    status, lines = finish(seeded_identified, tiny_record, "--max-extrapolation-error=larger-n0:depth=5%",
                           "--max-extrapolation-error=higher-rho:depth=5%")
    assert status == pytest.ExitCode.OK, lines
    match(lines, "GATE PASSED max-extrapolation-error[[]larger-n0:depth[]]: larger-n0 MAPE on L*worst "
                 "synth-llama/depth@*/s5*", "GATE PASSED max-extrapolation-error[[]higher-rho:depth[]]*")


def test_extrapolation_gate_fails_the_run(seeded_identified, tiny_record):
    status, lines = finish(seeded_identified, tiny_record, "--max-extrapolation-error=larger-n0:depth=0.001%")
    assert status == pytest.ExitCode.TESTS_FAILED
    match(lines, "GATE FAILED max-extrapolation-error[[]larger-n0:depth[]]*limit 0.001%*synth-llama/depth@*/s5*")
    assert "FAILED" in (seeded_identified / "report.md").read_text()


def test_unscoped_gate_fails_loudly_on_the_unidentified_group(seeded_identified, tiny_record):
    status, lines = finish(seeded_identified, tiny_record, "--max-extrapolation-error=1000%")
    assert status == pytest.ExitCode.TESTS_FAILED
    match(lines, "GATE FAILED max-extrapolation-error[[]larger-n0[]]*synth-llama/nm@*: not identified (*")


def test_gate_with_nothing_to_evaluate_is_a_usage_error(tmp_path, tiny_record):
    status, lines = finish(tmp_path / "empty", tiny_record, "--max-extrapolation-error=5%")
    assert status == pytest.ExitCode.USAGE_ERROR
    match(lines, "*usage error*no held-out model could be predicted*")


def test_ppl_regression_gate_against_a_baseline(tiny_record, tmp_path):
    # The gate compares this run's perplexities only: no post-training records (and no fit) needed.
    results = tmp_path / "results"
    assert finish(results, tiny_record)[0] == pytest.ExitCode.OK
    # Same run as its own baseline: 0% regression passes; a doctored baseline fails.
    status, lines = finish(results, tiny_record, f"--baseline={results}", "--max-ppl-regression=2%")
    assert status == pytest.ExitCode.OK
    match(lines, "GATE PASSED max-ppl-regression*")
    rec = json.loads((results / "records" / f"{CASE}.json").read_text())
    rec["ppl"]["ptb:128"]["ppl"] /= 1.5
    base = tmp_path / "base"
    write_record(base, Record.from_json(rec))
    status, lines = finish(results, tiny_record, f"--baseline={base}", "--max-ppl-regression=2%")
    assert status == pytest.ExitCode.TESTS_FAILED
    match(lines, "GATE FAILED max-ppl-regression*+50.00%*")


def _write_control(results, figure):
    def control(doc):
        doc.update(case_id="synth-s1-control", method="control", label="control", ratio=0.0)
        doc["posttrain"]["control_improvement"] = figure

    write_record(results, edited(synthetic_records()[0], control))


@pytest.mark.parametrize(("figure", "passed"), [(0.004, True), (0.03, False)])
def test_control_gate_reads_every_stored_control(seeded, tiny_record, figure, passed):
    _write_control(seeded, figure)
    status, lines = finish(seeded, tiny_record, "--max-control-improvement=1%")
    assert status == (pytest.ExitCode.OK if passed else pytest.ExitCode.TESTS_FAILED)
    verdict = "PASSED" if passed else "FAILED"
    match(lines, f"GATE {verdict} max-control-improvement: worst synth-s1-control {100 * figure:.2f}%*")


def test_bad_gate_option_is_a_usage_error(seeded):
    assert "--max-extrapolation-error" in usage_error("--profile", "tiny", f"--results-dir={seeded}",
                                                      "--max-extrapolation-error=lots")


def test_scope_naming_no_group_of_the_run_is_refused_before_any_case(tmp_path, monkeypatch):
    """The smoke profile's groups are known from its cases: a misspelt scope stops the run in
    pytest_configure, listing the valid groups, before the zoo is built or a case runs."""
    monkeypatch.setenv("PRUNEBENCH_CACHE_DIR", str(tmp_path / "cache"))
    message = usage_error("--profile", "smoke", f"--results-dir={tmp_path / 'r'}",
                          "--max-extrapolation-error=larger-n0:dpeth=2%")
    assert fnmatch.fnmatch(message, "*'dpeth' names no test and no group of this run (did you mean 'depth'?)*"
                                    "nano-smoke/depth@full-*nano-smoke/width@full-*"), message
    assert not (tmp_path / "cache").exists() and not (tmp_path / "r" / "records").exists()
