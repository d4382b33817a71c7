"""Issue 9: answers that can be trusted, through real `pytest bench` runs (pytester subprocesses).

* pytest-xdist: the controller fits, reports and gates once, from every worker's records;
* a crashed worker fails its case, and the report still covers the rest;
* a second run on a locked results directory is refused, naming the holder;
* an unusable record is named in one line, never reused, and never crashes the report;
* the law and held-out sizes are checked before any case runs;
* without data, CI fails where a laptop skips.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bench.sources.locks import RUN_LOCK_NAME

ROOT = Path(__file__).resolve().parents[1]
TINY_IDS = {"tiny-llama-dense-wikitext2-128", "tiny-llama-dense-ptb-128",
            "tiny-qwen2-dense-wikitext2-128", "tiny-qwen2-dense-ptb-128"}
VOLATILE = {"created", "timings", "machine", "invocation", "peak_memory_bytes", "wall_s", "tokens_per_s", "train_s",
            "wall_time_s", "peak_memory_mb"}


@pytest.fixture
def suite(bench_repo, monkeypatch, tmp_path):
    monkeypatch.setenv("PRUNEBENCH_CACHE_DIR", str(tmp_path / "cache"))
    return bench_repo


def stable(obj):
    """A record without the fields that differ between two identical runs (times, machine).

    The code identity goes too: in a checkout where someone commits between the two runs it
    differs, and the test is about what the runs computed.
    """
    if isinstance(obj, dict) and "code" in obj and "model" in obj:
        obj = {k: v for k, v in obj.items() if k != "code"}
    if isinstance(obj, dict):
        return {k: stable(v) for k, v in obj.items() if k not in VOLATILE}
    if isinstance(obj, list):
        return [stable(v) for v in obj]
    return obj


def records(results: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((results / "records").glob("*.json"))}


def test_xdist_run_equals_single_process_and_reports_once(suite, tmp_path):
    single, dist = tmp_path / "single", tmp_path / "dist"
    suite.runpytest_subprocess("--profile", "tiny", f"--results-dir={single}", "-p", "no:cacheprovider").assert_outcomes(passed=4)
    run = suite.runpytest_subprocess("--profile", "tiny", f"--results-dir={dist}", "-n", "2", "-p", "no:cacheprovider")
    run.assert_outcomes(passed=4)
    out = run.stdout.str()
    assert out.count("prunebench summary") == 1 and "4 record(s)" in out  # the controller, once
    assert set(records(dist)) == TINY_IDS
    assert {k: stable(v) for k, v in records(dist).items()} == {k: stable(v) for k, v in records(single).items()}
    assert (dist / "report.md").read_text() == (single / "report.md").read_text()
    assert not (dist / RUN_LOCK_NAME).exists()  # released at the end


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


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["single", "xdist"])
def test_second_run_on_a_locked_results_dir_is_refused(suite, tmp_path, workers):
    results = tmp_path / "r"
    results.mkdir()
    # A live holder: this test's own process, under another run id.
    (results / RUN_LOCK_NAME).write_text(json.dumps(
        {"run_id": "another-run", "pid": os.getpid(), "host": os.uname().nodename, "started": "now"}))
    run = suite.runpytest_subprocess("--profile", "tiny", f"--results-dir={results}", *workers, "-p", "no:cacheprovider")
    assert run.ret == pytest.ExitCode.USAGE_ERROR
    assert f"in use by another prunebench run (pid {os.getpid()}" in run.stdout.str() + run.stderr.str()
    assert not (results / "records").exists()  # nothing ran, nothing was written


def test_lock_of_a_dead_run_is_taken_over(suite, tmp_path):
    results = tmp_path / "r"
    results.mkdir()
    (results / RUN_LOCK_NAME).write_text(json.dumps(
        {"run_id": "dead-run", "pid": 2 ** 22 + 7, "host": os.uname().nodename, "started": "earlier"}))
    run = suite.runpytest_subprocess("--profile", "tiny", f"--results-dir={results}", "-k", "llama and ptb")
    run.assert_outcomes(passed=1)
    assert not (results / RUN_LOCK_NAME).exists()


def test_unusable_records_are_named_and_skipped(suite, tmp_path):
    results = tmp_path / "r"
    (results / "records").mkdir(parents=True)
    (results / "records" / "truncated.json").write_text('{"schema": "prunebench.rec')
    (results / "records" / "old.json").write_text(json.dumps({"schema": "prunebench.record/1", "case_id": "old"}))
    run = suite.runpytest_subprocess("--profile", "tiny", f"--results-dir={results}", "-k", "llama and ptb",
                                     "--resume")
    run.assert_outcomes(passed=1)
    out = run.stdout.str()
    assert "skipped cannot read record" in out and "truncated.json" in out
    assert "old.json has schema 'prunebench.record/1'" in out
    assert (results / "report.md").is_file()


def test_stale_record_is_rerun_with_a_reason(suite, tmp_path):
    results = tmp_path / "r"
    args = ("--profile", "tiny", f"--results-dir={results}", "-k", "llama and ptb", "-p", "no:cacheprovider")
    suite.runpytest_subprocess(*args).assert_outcomes(passed=1)
    path = results / "records" / "tiny-llama-dense-ptb-128.json"
    rec = json.loads(path.read_text())
    rec["provenance"]["code"].update(commit="1a2b3c4" + "0" * 33, dirty=False, diff_sha256=None)
    path.write_text(json.dumps(rec))
    run = suite.runpytest_subprocess(*args, "--resume")
    run.assert_outcomes(passed=1)
    run.stdout.fnmatch_lines(["*stale: tiny-llama-dense-ptb-128: code 1a2b3c4 -> *(ran again)*"])
    assert json.loads(path.read_text())["resume"]["rerun_because"].startswith("code 1a2b3c4 -> ")


@pytest.mark.parametrize("args, message", [
    (("--law", "p3"), "unknown law 'p3'"),
    (("--profile", "smoke", "--holdout", "s9"), "--holdout 's9' is not a post-trained size of study 'smoke'"),
    (("--max-extrapolation-error", "five"), "takes a percentage such as 5%"),
])
def test_bad_options_are_refused_before_any_case(suite, tmp_path, args, message):
    results = tmp_path / "r"
    base = ("--profile", "tiny") if "--profile" not in args else ()
    run = suite.runpytest_subprocess(*base, *args, f"--results-dir={results}")
    assert run.ret == pytest.ExitCode.USAGE_ERROR
    assert message in run.stderr.str()
    assert not results.exists()


@pytest.mark.parametrize("ci, outcome", [("true", "errors"), ("", "skipped")])
def test_missing_data_fails_in_ci_and_skips_elsewhere(pytester, monkeypatch, tmp_path, ci, outcome):
    monkeypatch.setenv("PRUNEBENCH_DATA_DIR", str(tmp_path / "no-such-dir"))
    monkeypatch.setenv("CI", ci)
    pytester.makeconftest((ROOT / "tests" / "conftest.py").read_text())
    pytester.makepyfile(test_needs_data="def test_it(data_dir):\n    assert data_dir.is_dir()\n")
    run = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rfs")
    run.assert_outcomes(**{outcome: 1})
    run.stdout.fnmatch_lines(["*no local data at*no-such-dir*PRUNEBENCH_DATA_DIR*"])
