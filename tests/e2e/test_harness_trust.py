"""Issue 9: answers that can be trusted, through real `pytest bench` runs (pytester subprocesses).

* a crashed xdist worker fails its case, and the report still covers the rest;
* a second run on a locked results directory is refused under xdist, naming the holder;
* a bad option stops `pytest bench` with exit status 4 before any case runs.

The rest of issue 9 is checked in process: xdist's records, report and gates against a single
process on the smoke profile (tests/e2e/test_smoke_profile.py), the single-process lock, a dead
run's lock, unusable records and the other bad options (tests/unit/test_plugin.py), a stale
record (tests/unit/test_provenance.py), and CI failing where a laptop skips
(tests/unit/test_suite_conftest.py).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bench.sources.locks import RUN_LOCK_NAME

TINY_IDS = {"tiny-llama-dense-wikitext2-128", "tiny-llama-dense-ptb-128",
            "tiny-qwen2-dense-wikitext2-128", "tiny-qwen2-dense-ptb-128"}


@pytest.fixture
def suite(bench_repo, monkeypatch, tmp_path):
    monkeypatch.setenv("PRUNEBENCH_CACHE_DIR", str(tmp_path / "cache"))
    return bench_repo


def records(results: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((results / "records").glob("*.json"))}


def test_crashed_worker_fails_its_case_and_the_report_covers_the_rest(suite, tmp_path):
    suite.makeconftest('''
import os
import pytest

@pytest.fixture(autouse=True)
def crash_one(request):
    case = getattr(getattr(request.node, "callspec", None), "params", {}).get("bench_case")
    if case is not None and case.id == "tiny-qwen2-dense-ptb-128":
        os._exit(13)  # the worker process dies outright, as on a segfault or OOM kill
''')
    results = tmp_path / "r"
    run = suite.runpytest_subprocess("--profile", "tiny", f"--results-dir={results}", "-n", "2", "-p", "no:cacheprovider")
    run.assert_outcomes(passed=3, failed=1)
    assert "tiny-qwen2-dense-ptb-128" in run.stdout.str() and "crashed" in run.stdout.str()
    assert set(records(results)) == TINY_IDS - {"tiny-qwen2-dense-ptb-128"}
    report = (results / "report.md").read_text()
    assert "3 records (profiles: tiny)" in report and "### tiny-qwen2" in report
    run.stdout.fnmatch_lines(["*prunebench: 3 record(s)*"])


def test_second_run_on_a_locked_results_dir_is_refused_under_xdist(suite, tmp_path):
    results = tmp_path / "r"
    results.mkdir()
    # A live holder: this test's own process, under another run id.
    (results / RUN_LOCK_NAME).write_text(json.dumps(
        {"run_id": "another-run", "pid": os.getpid(), "host": os.uname().nodename, "started": "now"}))
    run = suite.runpytest_subprocess("--profile", "tiny", f"--results-dir={results}", "-n", "2", "-p", "no:cacheprovider")
    assert run.ret == pytest.ExitCode.USAGE_ERROR
    assert f"in use by another prunebench run (pid {os.getpid()}" in run.stdout.str() + run.stderr.str()
    assert not (results / "records").exists()  # nothing ran, nothing was written


def test_a_bad_option_is_refused_before_any_case(suite, tmp_path):
    """The others, and the message of each, in tests/unit/test_plugin.py (the same hook, called directly)."""
    results = tmp_path / "r"
    run = suite.runpytest_subprocess("--profile", "tiny", "--law", "p3", f"--results-dir={results}")
    assert run.ret == pytest.ExitCode.USAGE_ERROR
    assert "unknown law 'p3'" in run.stderr.str()
    assert not results.exists()
