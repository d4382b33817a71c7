"""The pytest plugin end to end, in a subprocess pytest run (pytester)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reports.records import SCHEMA



@pytest.fixture
def suite(bench_repo):
    return bench_repo


def records(results: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((results / "records").glob("*.json"))}


def test_tiny_profile_writes_records_and_summary(suite, tmp_path):
    results = tmp_path / "results"
    run = suite.runpytest_subprocess("--profile", "tiny", f"--results-dir={results}", "-p", "no:cacheprovider")
    run.assert_outcomes(passed=4)
    run.stdout.fnmatch_lines(["*prunebench summary*", "*4 record(s)*", "*tiny-llama-dense-wikitext2-128*ok*"])
    recs = records(results)
    assert set(recs) == {"tiny-llama-dense-wikitext2-128", "tiny-llama-dense-ptb-128",
                         "tiny-qwen2-dense-wikitext2-128", "tiny-qwen2-dense-ptb-128"}
    rec = recs["tiny-qwen2-dense-ptb-128"]
    assert rec["schema"] == SCHEMA and rec["status"] == "ok"
    assert rec["config"]["model"] == "tiny-qwen2" and rec["ppl"]["ptb:128"]["split"] == "validation"
    assert rec["versions"]["transformers"] and rec["machine"]["platform"]
    assert not list((results / "records").glob(".*.tmp"))  # atomic writes leave no temp files


def test_k_selects_by_readable_id(suite, tmp_path):
    results = tmp_path / "r"
    run = suite.runpytest_subprocess("--profile", "tiny", f"--results-dir={results}", "-k", "ptb and qwen2")
    run.assert_outcomes(passed=1)
    assert set(records(results)) == {"tiny-qwen2-dense-ptb-128"}


def test_resume_reuses_matching_records(suite, tmp_path):
    results = tmp_path / "r"
    suite.runpytest_subprocess("--profile", "tiny", f"--results-dir={results}", "-k", "llama and ptb").assert_outcomes(passed=1)
    before = records(results)["tiny-llama-dense-ptb-128"]["created"]
    run = suite.runpytest_subprocess("--profile", "tiny", f"--results-dir={results}", "-k", "llama and ptb", "--resume")
    run.assert_outcomes(passed=1)
    run.stdout.fnmatch_lines(["*tiny-llama-dense-ptb-128*resumed*"])
    assert records(results)["tiny-llama-dense-ptb-128"]["created"] == before


def test_unwritable_results_dir_is_a_usage_error(suite, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    run = suite.runpytest_subprocess("--profile", "tiny", f"--results-dir={blocker / 'results'}")
    assert run.ret == pytest.ExitCode.USAGE_ERROR
    run.stderr.fnmatch_lines(["*results directory*is not writable*"])


def test_unknown_profile_is_a_usage_error(suite):
    run = suite.runpytest_subprocess("--profile", "smoll")
    assert run.ret == pytest.ExitCode.USAGE_ERROR
    run.stderr.fnmatch_lines(["*unknown profile 'smoll'*did you mean 'smol'*"])


def test_missing_data_fails_cases_with_the_fix(suite, tmp_path, monkeypatch):
    monkeypatch.delenv("PRUNEBENCH_DATA_DIR")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    results = tmp_path / "r"
    run = suite.runpytest_subprocess("--profile", "tiny", f"--results-dir={results}", "-k", "llama and ptb")
    run.assert_outcomes(failed=1)
    run.stdout.fnmatch_lines(["*no source for ptb/validation*PRUNEBENCH_DATA_DIR*"])
    assert records(results) == {}  # nothing partial is left behind as a result
