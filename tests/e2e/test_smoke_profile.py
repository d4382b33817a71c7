"""The whole `smoke` profile through a real `pytest bench` run: zoo build, 8 cases, fit, report.

This is the CI run of the nano pipeline (issue 4): two tiny bases trained by the suite, every
method of the nano matrix, post-training with trajectories, the law fitted on s1 and checked
on s2. Then the same profile under pytest-xdist (issue 9): two workers compute two of its
cases again, and the controller fits, reports and gates once, as the single process did.
`--resume` itself is tested end to end by tests/e2e/test_train_resume_kill.py.
"""

from __future__ import annotations

from synthetic_records import cases_of

import json
import math
import os
import shutil

import pytest

from bench.sources.locks import RUN_LOCK_NAME
from reports.records import SCHEMA

@pytest.fixture(scope="module")
def smoke_run(run_pytest_bench, data_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("smoke")
    env = {**os.environ, "PRUNEBENCH_DATA_DIR": str(data_dir), "PRUNEBENCH_CACHE_DIR": str(root / "cache"),
           "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    results = root / "results"
    first = run_pytest_bench("--profile", "smoke", f"--results-dir={results}", env=env)
    return first, results, env


def test_smoke_profile_runs_every_case_and_reports(smoke_run):
    run, results, _ = smoke_run
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    ids = {c.id for c in cases_of("smoke")}
    records = {p.stem: json.loads(p.read_text()) for p in (results / "records").glob("*.json")}
    assert set(records) == ids and len(ids) == 8
    for rec in records.values():
        assert rec["schema"] == SCHEMA and rec["status"] == "ok"
        assert rec["versions"]["transformers"] and rec["machine"]["platform"]
        traj = rec["posttrain"]["trajectory"]
        assert len(traj) >= 2 and all(math.isfinite(p["val_loss"]) for p in traj)
    assert not list((results / "records").glob(".*.tmp"))  # atomic writes leave no temp files
    assert not (results / RUN_LOCK_NAME).exists()  # the results directory is given back
    # The summary, once, after the cases.
    assert run.stdout.count("prunebench summary") == 1 and "prunebench: 8 record(s)" in run.stdout
    assert all(f"| {case_id} " in run.stdout for case_id in ids)
    # 2:4 cases keep their pattern through post-training; the control measures the plateau.
    control = [r for r in records.values() if r["method"] == "control"]
    assert control and all(math.isfinite(r["posttrain"]["control_improvement"]) for r in control)
    assert all(r["posttrain"]["mask_violations"] == 0 for r in records.values() if r["method"] == "nm")
    fit = json.loads((results / "fit.json").read_text())
    assert fit["groups"], "the session fitted no group"
    report = (results / "report.md").read_text()
    assert "## Extrapolation to held-out models" in report and "nano-smoke/depth" in report
    assert any(p.suffix == ".png" for p in results.iterdir())


STRICT_GATE = "--max-extrapolation-error=0.000001%"
VOLATILE = {"created", "timings", "machine", "invocation", "wall_s", "tokens_per_s", "train_s", "wall_time_s",
            "peak_memory_bytes", "peak_memory_mb", "code"}


def _stable(obj):
    """A record without what differs between two runs of the same computation: times, memory,
    the machine block, and the code identity (another session may commit in between)."""
    if isinstance(obj, dict):
        return {k: _stable(v) for k, v in obj.items() if k not in VOLATILE}
    if isinstance(obj, list):
        return [_stable(v) for v in obj]
    return obj


def _gates_cut(report: str) -> str:
    return report.split("## Gates")[0]


# Computed again by the xdist workers; the other six are reused (--resume) from the single run.
RECOMPUTED = ("smoke-s1-depth-0.25", "smoke-s2-width-0.25")


def test_smoke_under_xdist_gives_the_same_records_report_and_gate_verdicts(smoke_run, run_pytest_bench):
    """`-n 2`: workers compute cases, the controller fits and reports once from every record;
    a strict gate fails the xdist run as it fails the single process's study (issue 9)."""
    run, results, env = smoke_run
    assert run.returncode == 0
    dist = results.parent / "results-xdist"
    shutil.copytree(results / "records", dist / "records")
    for case_id in RECOMPUTED:
        (dist / "records" / f"{case_id}.json").unlink()
    xrun = run_pytest_bench("--profile", "smoke", f"--results-dir={dist}", "-n", "2", "--resume", STRICT_GATE, env=env)
    assert xrun.returncode == 1, xrun.stdout[-3000:] + xrun.stderr[-3000:]
    assert xrun.stdout.count("prunebench summary") == 1 and "prunebench: 8 record(s)" in xrun.stdout
    # The other six are reused, unless the checkout changed since the single run (a record's code
    # identity): then the workers compute them too, and everything below holds all the same.
    reused = {line.split("|")[1].strip() for line in xrun.stdout.splitlines()
              if line.startswith("| smoke-") and "resumed" in line}
    assert not reused & set(RECOMPUTED)
    assert "GATE FAILED max-extrapolation-error" in xrun.stdout
    single = {p.name: _stable(json.loads(p.read_text())) for p in (results / "records").glob("*.json")}
    spread = {p.name: _stable(json.loads(p.read_text())) for p in (dist / "records").glob("*.json")}
    assert spread == single
    assert _gates_cut((dist / "report.md").read_text()) == _gates_cut((results / "report.md").read_text())
    assert json.loads((dist / "fit.json").read_text()) == json.loads((results / "fit.json").read_text())
    assert not (dist / RUN_LOCK_NAME).exists()  # the controller gave the results directory back
    # The same strict gate fails on the single process's records (its study, in process).
    from bench.env import RunEnv
    from bench.harness.run_config import CommandLine
    from bench.harness.session import BenchSession, CaseOutcome
    from reports.records import Record

    cli = CommandLine(study="smoke", report=False, max_extrapolation_error=(STRICT_GATE.split("=", 1)[1],))
    session = BenchSession(cli, RunEnv.make(results_dir=results))
    session.outcomes = [CaseOutcome(None, Record.from_json(json.loads(p.read_text())))
                        for p in (results / "records").glob("*.json")]
    (verdict,) = session.finish().verdicts
    assert not verdict.passed and f"GATE FAILED {verdict.name}: {verdict.detail}" in xrun.stdout
