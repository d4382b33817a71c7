"""The report stage of the plugin end to end (pytester): records in, report out, gates."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.records import write_record
from synthetic_records import synthetic_records

MATRIX = (Path(__file__).resolve().parents[1] / "bench" / "test_matrix.py").read_text()


@pytest.fixture
def seeded(pytester, data_dir, monkeypatch, tmp_path):
    """A suite directory, and a results directory already holding post-training records."""
    monkeypatch.setenv("PRUNEBENCH_DATA_DIR", str(data_dir))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    pytester.makeconftest('pytest_plugins = ["bench.plugin"]')
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
    run.stdout.fnmatch_lines(["*extrapolation error on held-out synth-llama/depth/s4:*%", "*report: *report.md"])
    report = (results / "report.md").read_text()
    assert "## Scaling law fit (`p2`)" in report and "synth-llama/nm" in report and "tiny-llama" in report
    assert (results / "fit.json").is_file()
    for png in ("loss_synth-llama_depth.png", "loss_synth-llama_nm.png", "heldout_synth-llama_depth.png"):
        assert (results / png).read_bytes()[:4] == b"\x89PNG"


def test_extrapolation_gate_passes(seeded):
    pytester, results = seeded
    run = _run(pytester, results, "--max-extrapolation-error=5%")
    assert run.ret == 0
    run.stdout.fnmatch_lines(["*GATE PASSED max-extrapolation-error: worst synth-llama/*"])


def test_extrapolation_gate_fails_the_run(seeded):
    pytester, results = seeded
    run = _run(pytester, results, "--max-extrapolation-error=0.001%")
    assert run.ret == pytest.ExitCode.TESTS_FAILED
    run.stdout.fnmatch_lines(["*GATE FAILED max-extrapolation-error: worst synth-llama/*limit 0.001%*"])
    assert "FAILED" in (results / "report.md").read_text()


def test_gate_with_nothing_to_evaluate_is_a_usage_error(pytester, data_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("PRUNEBENCH_DATA_DIR", str(data_dir))
    pytester.makeconftest('pytest_plugins = ["bench.plugin"]')
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
    write_record(base, rec)
    bad = _run(pytester, results, f"--baseline={base}", "--max-ppl-regression=2%")
    assert bad.ret == pytest.ExitCode.TESTS_FAILED
    bad.stdout.fnmatch_lines(["*GATE FAILED max-ppl-regression*+50.00%*"])


def _write_control(results, figure):
    import copy

    rec = copy.deepcopy(synthetic_records()[0])
    rec.update(case_id="synth-s1-control", method="control", label="control", ratio=0.0)
    rec["posttrain"]["control_improvement"] = figure
    write_record(results, rec)


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
