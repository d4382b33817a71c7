"""`pytest bench --study FILE`: a user's own study file runs like a built-in profile (pytester)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


USER_STUDY = """
[study]
name = "mine"
description = "a user's study: a tiny Llama, dense and block-wise L2"

[[models]]
spec = "tiny-llama"
key = "tl"
family = "tiny"

[[methods]]
method = "dense"

[[methods]]
method = "blockwise"
label = "l2"
ratios = [0.25, 0.5]
options = { importance = "l2", layers = [1, 3] }

[evaluation]
datasets = ["ptb"]
seq_lens = [64]
max_windows = 2
"""


@pytest.fixture
def suite(bench_repo):
    """A directory that looks like the repo (the plugin, the matrix test) plus a study file."""
    pytester = bench_repo
    (pytester.path / "studies").mkdir()
    (pytester.path / "studies" / "mine.toml").write_text(USER_STUDY)
    return pytester


def records(results: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((results / "records").glob("*.json"))}


def test_user_study_runs_slices_resumes_and_reports(suite, tmp_path):
    results = tmp_path / "r"
    run = suite.runpytest_subprocess("--study", "studies/mine.toml", f"--results-dir={results}", "-p", "no:cacheprovider",
                                     "-k", "dense or 0.25")
    run.assert_outcomes(passed=2)
    recs = records(results)
    assert set(recs) == {"mine-tl-dense", "mine-tl-l2-0.25"}
    l2 = recs["mine-tl-l2-0.25"]
    assert l2["profile"] == "mine" and l2["config"]["prune"] == {"importance": "l2", "layers": [1, 3]}
    assert l2["params"]["after"] < l2["params"]["before"] and l2["ppl"]["ptb:64"]["windows"] == 2
    report = (results / "report.md").read_text()
    assert "### tiny tl" in report and "| l2 " in report

    # --resume reuses both records and runs only the new case; the report then has all three.
    run = suite.runpytest_subprocess("--study", "studies/mine.toml", f"--results-dir={results}", "-p", "no:cacheprovider",
                                     "--resume")
    run.assert_outcomes(passed=3)
    run.stdout.fnmatch_lines(["*mine-tl-dense*resumed*"])
    assert records(results)["mine-tl-dense"]["created"] == recs["mine-tl-dense"]["created"]
    assert set(records(results)) == {"mine-tl-dense", "mine-tl-l2-0.25", "mine-tl-l2-0.5"}


def test_collect_only_lists_the_study_ids(suite):
    run = suite.runpytest_subprocess("--study", "studies/mine.toml", "--collect-only", "-q")
    run.stdout.fnmatch_lines(["*test_case[[]mine-tl-dense[]]", "*test_case[[]mine-tl-l2-0.25[]]",
                              "*test_case[[]mine-tl-l2-0.5[]]"])


@pytest.mark.parametrize("edit,message", [
    (("max_windows = 2", "max_window = 2"), "*mine.toml: evaluation.max_window: unknown key (did you mean 'max_windows'?)*"),
    (("ratios = [0.25, 0.5]", "ratios = [0.25, 1.5]"), "*mine.toml: methods[[]1[]] (blockwise).ratios: ratio 1.5 is outside (0, 1)*"),
    (('key = "tl"', 'key = 3'), "*mine.toml: models[[]0[]].key: must be a string, got 3*"),
])
def test_bad_study_file_is_a_usage_error_and_writes_nothing(suite, tmp_path, edit, message):
    path = suite.path / "studies" / "mine.toml"
    path.write_text(USER_STUDY.replace(*edit))
    results = tmp_path / "r"
    run = suite.runpytest_subprocess("--study", str(path), f"--results-dir={results}")
    assert run.ret == pytest.ExitCode.USAGE_ERROR
    run.stderr.fnmatch_lines([message])
    assert not results.exists()


def test_missing_study_file_and_both_options_are_usage_errors(suite):
    run = suite.runpytest_subprocess("--study", "nope.toml")
    assert run.ret == pytest.ExitCode.USAGE_ERROR
    run.stderr.fnmatch_lines(["*--study nope.toml: no such file*"])
    run = suite.runpytest_subprocess("--study", "studies/mine.toml", "--profile", "tiny")
    assert run.ret == pytest.ExitCode.USAGE_ERROR
    run.stderr.fnmatch_lines(["*--study and --profile both name the matrix*"])


def test_the_studys_law_holdout_and_gates_are_the_defaults_the_command_line_overrides(tmp_path):
    from bench.harness.run_config import CommandLine, build_run_config
    from bench.studies.gates import PplRegressionGate
    from reports.records import Record

    recipe = ("\n[posttrain]\ntokens = 1024\ncheckpoint_every = 256\nbatch_tokens = 256\nmicro_batch_tokens = 256\n"
              "seq_len = 32\n")
    text = USER_STUDY.replace('description', 'law = "chinchilla"\nholdout = ["tl"]\ndescription') + recipe + (
        '\n[gates]\nmax_extrapolation_error = ["larger-n0=5%"]\nbaseline = "base"\nmax_ppl_regression = "2%"\n')
    path = tmp_path / "s.toml"
    path.write_text(text)
    base = tmp_path / "base" / "records"
    base.mkdir(parents=True)  # the baseline is read when the run is configured: it must hold a record
    rec = Record.from_json({"schema": "prunebench.record/2", "case_id": "x", "status": "ok", "method": "dense",
                            "model": {"spec": "m"}, "ppl": {}})
    (base / "x.json").write_text(__import__("json").dumps(rec.to_json()))
    config = build_run_config(CommandLine(str(path)))
    assert (config.law, config.holdout) == ("chinchilla", ("tl",))
    assert [g.text for g in config.gates.extrapolation] == ["larger-n0=5%"]
    assert isinstance(config.gates.ppl, PplRegressionGate) and config.gates.ppl.max_regression == 2.0
    assert config.gates.ppl.baseline == str(tmp_path / "base")  # relative to the study file
    assert [r.case_id for r in config.gates.ppl.records] == ["x"]  # read once, before any case
    over = build_run_config(CommandLine(str(path), law="p2", holdout=None, max_extrapolation_error=("7%",),
                                        max_ppl_regression="3%"))
    assert over.law == "p2" and [g.max_error for g in over.gates.extrapolation] == [7.0]
    assert (over.gates.ppl.baseline, over.gates.ppl.max_regression) == (str(tmp_path / "base"), 3.0)
    nano = build_run_config(CommandLine("nano"))
    assert (nano.law, nano.holdout, nano.gates.all()) == ("p2", None, ())


def test_a_studys_default_gate_is_built_before_any_case(suite, tmp_path):
    path = suite.path / "studies" / "mine.toml"
    path.write_text(USER_STUDY + '\n[gates]\nbaseline = "no-such-run"\nmax_ppl_regression = "2%"\n')
    run = suite.runpytest_subprocess("--study", str(path), f"--results-dir={tmp_path / 'r'}")
    assert run.ret == pytest.ExitCode.USAGE_ERROR
    run.stderr.fnmatch_lines([f"*{suite.path / 'studies' / 'no-such-run'}*"])  # the study's baseline reached the gate
