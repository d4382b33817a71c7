"""The pytest plugin's wiring, in process: its hooks called directly (`plugin_helpers`).

What these check needs no interpreter of its own: options become a session or a usage error
before any case, the matrix test runs a case and writes its record, a user error fails one
case with its fix, the results directory is taken and given back, and the end of the run
sets the exit status. Real `pytest bench` runs, one per behaviour, are in tests/e2e.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from reports.records import SCHEMA
from bench.sources.locks import RUN_LOCK_NAME
from plugin_helpers import (BenchmarkStandIn, case_runner, collection_finish, configured, session_finish, session_of,
                            summary, usage_error)


def records(results: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((results / "records").glob("*.json"))}


def tiny_case(config, case_id: str):
    return next(c for c in session_of(config).cases() if c.id == case_id)


@pytest.fixture
def tiny_args(data_dir, tmp_path):
    return ("--profile", "tiny", f"--data-dir={data_dir}", f"--cache-dir={tmp_path / 'cache'}")


def test_a_tiny_case_runs_through_the_matrix_test_and_is_summarised(tiny_args, tmp_path):
    from bench.test_matrix import test_case

    results = tmp_path / "results"
    with configured(*tiny_args, f"--results-dir={results}") as config:
        case = tiny_case(config, "tiny-qwen2-dense-ptb-128")
        collection_finish(config, [case])
        run, properties = case_runner(config)
        benchmark = BenchmarkStandIn()
        test_case(case, run, session_of(config), benchmark)  # the matrix test's own checks of the record
        assert benchmark.calls == 1 and benchmark.extra_info["eval_tokens_per_s"] > 0  # one timed round
        assert [name for name, _ in properties] == ["prunebench_outcome"]  # what an xdist controller reads
        assert session_finish(config) == pytest.ExitCode.OK
        lines = summary(config)
    assert lines[0] == "== prunebench summary ==" and "1 record(s)" in lines[1]
    assert any("tiny-qwen2-dense-ptb-128" in line and "ok" in line for line in lines)
    rec = records(results)["tiny-qwen2-dense-ptb-128"]
    assert rec["schema"] == SCHEMA and rec["status"] == "ok"
    assert rec["config"]["model"] == "tiny-qwen2" and rec["ppl"]["ptb:128"]["split"] == "validation"
    assert rec["versions"]["transformers"] and rec["machine"]["platform"]
    assert not list((results / "records").glob(".*.tmp"))  # atomic writes leave no temp files
    assert not (results / RUN_LOCK_NAME).exists()  # given back at the end


def test_unknown_profile_is_a_usage_error():
    assert "unknown profile 'smoll' (did you mean 'smol'?)" in usage_error("--profile", "smoll")


@pytest.mark.parametrize("args, message", [
    (("--law", "p3"), "unknown law 'p3'"),
    (("--profile", "smoke", "--holdout", "s9"), "--holdout 's9' is not a post-trained size of study 'smoke'"),
    (("--max-extrapolation-error", "five"), "takes a percentage such as 5%"),
])
def test_bad_options_are_refused_before_any_case(tmp_path, args, message):
    """tests/e2e/test_harness_trust.py runs the first through `pytest bench` (exit status 4)."""
    results = tmp_path / "r"
    base = ("--profile", "tiny") if "--profile" not in args else ()
    assert message in usage_error(*base, *args, f"--results-dir={results}")
    assert not results.exists()


def test_unwritable_results_dir_is_a_usage_error(tiny_args, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with configured(*tiny_args, f"--results-dir={blocker / 'results'}") as config:
        with pytest.raises(pytest.UsageError, match="results directory .* is not writable"):
            collection_finish(config, [tiny_case(config, "tiny-llama-dense-ptb-128")])


def test_a_results_dir_held_by_a_live_run_is_refused_before_any_case(tiny_args, tmp_path):
    """The single-process path; tests/e2e/test_harness_trust.py runs the xdist one."""
    results = tmp_path / "r"
    results.mkdir()
    # A live holder: this test's own process, under another run id.
    (results / RUN_LOCK_NAME).write_text(json.dumps(
        {"run_id": "another-run", "pid": os.getpid(), "host": os.uname().nodename, "started": "now"}))
    with configured(*tiny_args, f"--results-dir={results}") as config:
        with pytest.raises(pytest.UsageError, match=rf"in use by another prunebench run \(pid {os.getpid()}"):
            collection_finish(config, [tiny_case(config, "tiny-llama-dense-ptb-128")])
    assert not (results / "records").exists()  # nothing ran, nothing was written


def test_lock_of_a_dead_run_is_taken_over_and_given_back(tiny_args, tmp_path):
    results = tmp_path / "r"
    results.mkdir()
    (results / RUN_LOCK_NAME).write_text(json.dumps(
        {"run_id": "dead-run", "pid": 2 ** 22 + 7, "host": os.uname().nodename, "started": "earlier"}))
    with configured(*tiny_args, f"--results-dir={results}") as config:
        collection_finish(config, [tiny_case(config, "tiny-llama-dense-ptb-128")])
        held = json.loads((results / RUN_LOCK_NAME).read_text())
        assert held["run_id"] == session_of(config).run_id and held["pid"] == os.getpid()
        assert session_finish(config) == pytest.ExitCode.OK
    assert not (results / RUN_LOCK_NAME).exists()


def test_missing_data_fails_the_case_with_the_fix(tmp_path, monkeypatch):
    monkeypatch.delenv("PRUNEBENCH_DATA_DIR", raising=False)
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    results = tmp_path / "r"
    with configured("--profile", "tiny", f"--results-dir={results}", f"--cache-dir={tmp_path / 'c'}") as config:
        run, properties = case_runner(config)
        with pytest.raises(pytest.fail.Exception, match=r"tiny-llama-dense-ptb-128: no source for ptb/validation"
                                                        r".*PRUNEBENCH_DATA_DIR"):
            run(tiny_case(config, "tiny-llama-dense-ptb-128"))
    assert properties == [] and records(results) == {}  # nothing partial is left behind as a result


def test_unusable_records_are_named_and_skipped(tiny_args, tmp_path):
    results = tmp_path / "r"
    (results / "records").mkdir(parents=True)
    (results / "records" / "truncated.json").write_text('{"schema": "prunebench.rec')
    (results / "records" / "old.json").write_text(json.dumps({"schema": "prunebench.record/1", "case_id": "old"}))
    with configured(*tiny_args, f"--results-dir={results}", "--resume") as config:
        case = tiny_case(config, "tiny-llama-dense-ptb-128")
        collection_finish(config, [case])
        case_runner(config)[0](case)
        assert session_finish(config) == pytest.ExitCode.OK
        out = "\n".join(summary(config))
    assert "skipped cannot read record" in out and "truncated.json" in out
    assert "old.json has schema 'prunebench.record/1'" in out
    assert (results / "report.md").is_file()
