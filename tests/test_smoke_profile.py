"""The whole `smoke` profile through a real `pytest bench` run: zoo build, 8 cases, fit, report.

This is the CI run of the nano pipeline (issue 4): two tiny bases trained by the suite, every
method of the nano matrix, post-training with trajectories, the law fitted on s1 and checked
on s2, then a `--resume` run that recomputes nothing.
"""

from __future__ import annotations

from synthetic_records import cases_of

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest


REPO = Path(__file__).resolve().parents[1]


def _pytest_bench(*args, env):
    return subprocess.run([sys.executable, "-m", "pytest", "bench", "-p", "no:cacheprovider", "-q", *args],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def smoke_run(data_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("smoke")
    env = {**os.environ, "PRUNEBENCH_DATA_DIR": str(data_dir), "PRUNEBENCH_CACHE_DIR": str(root / "cache"),
           "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    results = root / "results"
    first = _pytest_bench("--profile", "smoke", f"--results-dir={results}", env=env)
    return first, results, env


def test_smoke_profile_runs_every_case_and_reports(smoke_run):
    run, results, _ = smoke_run
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    ids = {c.id for c in cases_of("smoke")}
    records = {p.stem: json.loads(p.read_text()) for p in (results / "records").glob("*.json")}
    assert set(records) == ids and len(ids) == 8
    for rec in records.values():
        assert rec["status"] == "ok"
        traj = rec["posttrain"]["trajectory"]
        assert len(traj) >= 2 and all(math.isfinite(p["val_loss"]) for p in traj)
    # 2:4 cases keep their pattern through post-training; the control measures the plateau.
    control = [r for r in records.values() if r["method"] == "control"]
    assert control and all(math.isfinite(r["posttrain"]["control_improvement"]) for r in control)
    assert all(r["posttrain"]["mask_violations"] == 0 for r in records.values() if r["method"] == "nm")
    fit = json.loads((results / "fit.json").read_text())
    assert fit["groups"], "the session fitted no group"
    report = (results / "report.md").read_text()
    assert "## Extrapolation to held-out models" in report and "nano-smoke/depth" in report
    assert any(p.suffix == ".png" for p in results.iterdir())


def test_smoke_resume_recomputes_nothing(smoke_run):
    run, results, env = smoke_run
    assert run.returncode == 0
    before = {p.name: p.stat().st_mtime_ns for p in (results / "records").glob("*.json")}
    again = _pytest_bench("--profile", "smoke", f"--results-dir={results}", "--resume", env=env)
    assert again.returncode == 0, again.stdout[-3000:]
    assert again.stdout.count("resumed") >= 8
    assert {p.name: p.stat().st_mtime_ns for p in (results / "records").glob("*.json")} == before


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


def test_smoke_under_xdist_gives_the_same_records_report_and_gate_verdicts(smoke_run):
    """`-n 2`: the controller fits and reports once, from both workers' records; a strict gate
    fails the xdist run and the single-process run alike (issue 9)."""
    run, results, env = smoke_run
    assert run.returncode == 0
    dist = results.parent / "results-xdist"
    xrun = _pytest_bench("--profile", "smoke", f"--results-dir={dist}", "-n", "2", STRICT_GATE, env=env)
    assert xrun.returncode == 1, xrun.stdout[-3000:] + xrun.stderr[-3000:]
    assert xrun.stdout.count("prunebench summary") == 1
    assert "GATE FAILED max-extrapolation-error" in xrun.stdout
    single = {p.name: _stable(json.loads(p.read_text())) for p in (results / "records").glob("*.json")}
    spread = {p.name: _stable(json.loads(p.read_text())) for p in (dist / "records").glob("*.json")}
    assert spread == single
    assert _gates_cut((dist / "report.md").read_text()) == _gates_cut((results / "report.md").read_text())
    assert json.loads((dist / "fit.json").read_text()) == json.loads((results / "fit.json").read_text())
    # The same strict gate fails the single-process run (resumed: nothing is recomputed).
    again = _pytest_bench("--profile", "smoke", f"--results-dir={results}", "--resume", STRICT_GATE, env=env)
    assert again.returncode == 1 and "GATE FAILED max-extrapolation-error" in again.stdout
