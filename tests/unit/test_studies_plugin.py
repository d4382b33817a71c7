"""`pytest bench --study FILE`: a user's own study file runs like a built-in profile.

In process: the plugin's hooks are called directly (`plugin_helpers`); the real `pytest bench
--study` runs are in tests/e2e (resume after a kill, the paper study).
"""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path

import pytest

from bench import test_matrix
from plugin_helpers import (BenchmarkStandIn, case_runner, collection_finish, configured, matrix_ids, session_finish, session_of,
                            summary, usage_error)


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
def study(tmp_path, data_dir, monkeypatch):
    """A study file in a directory of its own, and the options of a run of it (local data)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (tmp_path / "studies").mkdir()
    path = tmp_path / "studies" / "mine.toml"
    path.write_text(USER_STUDY)
    return path, (f"--data-dir={data_dir}", f"--cache-dir={tmp_path / 'cache'}")


def records(results: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((results / "records").glob("*.json"))}


def run_study(path, options, results, *args, only=None):
    """`pytest bench --study PATH` in process (`-k`: the case ids in `only`); returns the summary lines."""
    with configured("--study", str(path), f"--results-dir={results}", *options, *args) as config:
        cases = [c for c in session_of(config).cases() if only is None or c.id in only]
        collection_finish(config, cases)
        run, _ = case_runner(config)
        for case in cases:
            test_matrix.test_case(case, run, session_of(config), BenchmarkStandIn())
        assert session_finish(config) == pytest.ExitCode.OK
        return summary(config)


def test_user_study_runs_slices_resumes_and_reports(study, tmp_path):
    path, options = study
    results = tmp_path / "r"
    run_study(path, options, results, only={"mine-tl-dense", "mine-tl-l2-0.25"})
    recs = records(results)
    assert set(recs) == {"mine-tl-dense", "mine-tl-l2-0.25"}
    l2 = recs["mine-tl-l2-0.25"]
    assert l2["profile"] == "mine" and l2["config"]["prune"] == {"importance": "l2", "layers": [1, 3]}
    assert l2["params"]["after"] < l2["params"]["before"] and l2["ppl"]["ptb:64"]["windows"] == 2
    report = (results / "report.md").read_text()
    assert "### tiny tl" in report and "| l2 " in report

    # --resume reuses both records and runs only the new case; the report then has all three.
    lines = run_study(path, options, results, "--resume")
    assert any("mine-tl-dense" in line and "resumed" in line for line in lines)
    assert not any("mine-tl-l2-0.5" in line and "resumed" in line for line in lines)
    assert records(results)["mine-tl-dense"]["created"] == recs["mine-tl-dense"]["created"]
    assert set(records(results)) == {"mine-tl-dense", "mine-tl-l2-0.25", "mine-tl-l2-0.5"}


def test_collect_only_lists_the_study_ids(study):
    path, _ = study
    with configured("--study", str(path), collectonly=True) as config:
        assert matrix_ids(config) == ["mine-tl-dense", "mine-tl-l2-0.25", "mine-tl-l2-0.5"]


@pytest.mark.parametrize("edit,message", [
    (("max_windows = 2", "max_window = 2"), "*mine.toml: evaluation.max_window: unknown key (did you mean 'max_windows'?)*"),
    (("ratios = [0.25, 0.5]", "ratios = [0.25, 1.5]"), "*mine.toml: methods[[]1[]] (blockwise).ratios: ratio 1.5 is outside (0, 1)*"),
    (('key = "tl"', 'key = 3'), "*mine.toml: models[[]0[]].key: must be a string, got 3*"),
])
def test_bad_study_file_is_a_usage_error_and_writes_nothing(study, tmp_path, edit, message):
    path, _ = study
    path.write_text(USER_STUDY.replace(*edit))
    results = tmp_path / "r"
    error = usage_error("--study", str(path), f"--results-dir={results}")
    assert fnmatch.fnmatch(error, message), error
    assert not results.exists()


def test_missing_study_file_and_both_options_are_usage_errors(study, monkeypatch):
    path, _ = study
    monkeypatch.chdir(path.parents[1])
    assert "--study nope.toml: no such file" in usage_error("--study", "nope.toml")
    assert "--study and --profile both name the matrix" in usage_error("--study", "studies/mine.toml",
                                                                     "--profile", "tiny")


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


def test_a_studys_default_gate_is_built_before_any_case(study, tmp_path):
    path, _ = study
    path.write_text(USER_STUDY + '\n[gates]\nbaseline = "no-such-run"\nmax_ppl_regression = "2%"\n')
    error = usage_error("--study", str(path), f"--results-dir={tmp_path / 'r'}")
    assert str(path.parent / "no-such-run") in error  # the study's baseline reached the gate
