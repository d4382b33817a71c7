"""The report stage of the plugin end to end (pytester): records in, report out, gates."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.sources.records import write_record
from reports.records import Record
from synthetic_records import edited, synthetic_records

MATRIX = (Path(__file__).resolve().parents[1] / "bench" / "test_matrix.py").read_text()


@pytest.fixture
def seeded(pytester, data_dir, monkeypatch, tmp_path):
    """A suite directory, and a results directory already holding post-training records."""
    monkeypatch.setenv("PRUNEBENCH_DATA_DIR", str(data_dir))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("PRUNEBENCH_BOOTSTRAP", "6")  # the session's study: few replicates keep these tests fast
    pytester.makepyfile(test_matrix=MATRIX)
    results = tmp_path / "results"
    for rec in synthetic_records(noise=0.001):
        write_record(results, rec)
    return pytester, results


def _run(pytester, results, *extra):
    return pytester.runpytest_subprocess("--profile", "tiny", "-k", "llama and ptb", f"--results-dir={results}", *extra)


def test_report_plots_and_fit_json_are_written(seeded):
    pytester, results = seeded
    run = _run(pytester, results)
    run.assert_outcomes(passed=1)
    run.stdout.fnmatch_lines(["*extrapolation to held-out synth-llama/depth@full-*/s4: MAPE *%*", "*report: *report.md"])
    report = (results / "report.md").read_text()
    assert "## Scaling law fit (`p2`)" in report and "synth-llama/nm" in report and "tiny-llama" in report
    for heading in ("## Generalisation tests", "## Candidate forms", "## Conditions a law must meet"):
        assert heading in report
    assert "not identified" in report  # 3 fit sizes cannot identify the 3 size parameters
    assert (results / "fit.json").is_file()
    for png in ("loss_synth-llama_depth.png", "loss_synth-llama_nm.png", "heldout_synth-llama_depth.png"):
        assert (results / png).read_bytes()[:4] == b"\x89PNG"


@pytest.fixture
def seeded_identified(pytester, data_dir, monkeypatch, tmp_path):
    """Records of five sizes whose depth fit is identified (and a 2:4 group that is not)."""
    from synthetic_records import IDENTIFIABLE_P2, SIZES5

    monkeypatch.setenv("PRUNEBENCH_DATA_DIR", str(data_dir))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("PRUNEBENCH_BOOTSTRAP", "12")
    pytester.makepyfile(test_matrix=MATRIX)
    results = tmp_path / "results"
    for rec in synthetic_records(noise=0.0005, sizes=SIZES5, true_p2=IDENTIFIABLE_P2):
        write_record(results, rec)
    return pytester, results


def test_scoped_extrapolation_gate_passes_on_the_identified_group(seeded_identified):
    pytester, results = seeded_identified
    run = _run(pytester, results, "--max-extrapolation-error=larger-n0:depth=5%",
               "--max-extrapolation-error=higher-rho:depth=5%")
    assert run.ret == 0, run.stdout.str()[-3000:]
    run.stdout.fnmatch_lines(["*GATE PASSED max-extrapolation-error[[]larger-n0:depth[]]: larger-n0 MAPE on L*worst synth-llama/depth@*/s5*",
                              "*GATE PASSED max-extrapolation-error[[]higher-rho:depth[]]*"])


def test_extrapolation_gate_fails_the_run(seeded_identified):
    pytester, results = seeded_identified
    run = _run(pytester, results, "--max-extrapolation-error=larger-n0:depth=0.001%")
    assert run.ret == pytest.ExitCode.TESTS_FAILED
    run.stdout.fnmatch_lines(["*GATE FAILED max-extrapolation-error[[]larger-n0:depth[]]*limit 0.001%*synth-llama/depth@*/s5*"])
    assert "FAILED" in (results / "report.md").read_text()


def test_unscoped_gate_fails_loudly_on_the_unidentified_group(seeded_identified):
    pytester, results = seeded_identified
    run = _run(pytester, results, "--max-extrapolation-error=1000%")
    assert run.ret == pytest.ExitCode.TESTS_FAILED
    run.stdout.fnmatch_lines(["*GATE FAILED max-extrapolation-error[[]larger-n0[]]*synth-llama/nm@*: not identified (*"])


def test_gate_with_nothing_to_evaluate_is_a_usage_error(pytester, data_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("PRUNEBENCH_DATA_DIR", str(data_dir))
    pytester.makepyfile(test_matrix=MATRIX)
    run = _run(pytester, tmp_path / "empty", "--max-extrapolation-error=5%")
    assert run.ret == pytest.ExitCode.USAGE_ERROR
    run.stdout.fnmatch_lines(["*usage error*no held-out model could be predicted*"])


def test_ppl_regression_gate_against_a_baseline(seeded, tmp_path):
    pytester, results = seeded
    _run(pytester, results).assert_outcomes(passed=1)
    # Same run as its own baseline: 0% regression passes; a doctored baseline fails.
    ok = _run(pytester, results, f"--baseline={results}", "--max-ppl-regression=2%")
    assert ok.ret == 0
    ok.stdout.fnmatch_lines(["*GATE PASSED max-ppl-regression*"])
    import json

    rec_path = results / "records" / "tiny-llama-dense-ptb-128.json"
    rec = json.loads(rec_path.read_text())
    rec["ppl"]["ptb:128"]["ppl"] /= 1.5
    base = tmp_path / "base"
    write_record(base, Record.from_json(rec))
    bad = _run(pytester, results, f"--baseline={base}", "--max-ppl-regression=2%")
    assert bad.ret == pytest.ExitCode.TESTS_FAILED
    bad.stdout.fnmatch_lines(["*GATE FAILED max-ppl-regression*+50.00%*"])


def _write_control(results, figure):
    def control(doc):
        doc.update(case_id="synth-s1-control", method="control", label="control", ratio=0.0)
        doc["posttrain"]["control_improvement"] = figure

    write_record(results, edited(synthetic_records()[0], control))


@pytest.mark.parametrize(("figure", "passed"), [(0.004, True), (0.03, False)])
def test_control_gate_reads_every_stored_control(seeded, figure, passed):
    pytester, results = seeded
    _write_control(results, figure)
    run = _run(pytester, results, "--max-control-improvement=1%")
    assert run.ret == (0 if passed else pytest.ExitCode.TESTS_FAILED)
    verdict = "PASSED" if passed else "FAILED"
    run.stdout.fnmatch_lines([f"*GATE {verdict} max-control-improvement: worst synth-s1-control {100 * figure:.2f}%*"])


def test_bad_gate_option_is_a_usage_error(seeded):
    pytester, results = seeded
    run = _run(pytester, results, "--max-extrapolation-error=lots")
    assert run.ret == pytest.ExitCode.USAGE_ERROR


def test_scope_naming_no_group_of_the_run_is_refused_before_any_case(pytester, data_dir, monkeypatch, tmp_path):
    """The smoke profile's groups are known from its cases: a misspelt scope stops the run in
    pytest_configure, listing the valid groups, before the zoo is built or a case runs."""
    monkeypatch.setenv("PRUNEBENCH_DATA_DIR", str(data_dir))
    monkeypatch.setenv("PRUNEBENCH_CACHE_DIR", str(tmp_path / "cache"))
    pytester.makepyfile(test_matrix=MATRIX)
    run = pytester.runpytest_subprocess("--profile", "smoke", f"--results-dir={tmp_path / 'r'}",
                                        "--max-extrapolation-error=larger-n0:dpeth=2%")
    assert run.ret == pytest.ExitCode.USAGE_ERROR
    run.stderr.fnmatch_lines(["*'dpeth' names no test and no group of this run (did you mean 'depth'?)*"
                              "nano-smoke/depth@full-*nano-smoke/width@full-*"])
    assert not (tmp_path / "cache").exists() and not (tmp_path / "r" / "records").exists()
