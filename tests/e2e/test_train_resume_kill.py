"""`pytest bench --resume` end to end: a killed run resumes where it left off (a real kill).

A tiny study of two cases, one of which post-trains with a training state saved at every
checkpoint. `-k` runs the other case alone; a second run is SIGKILLed once a training state is
on disk; `--resume` then reuses the first case's record untouched and continues the killed case
from its state, whose trajectory must equal an uninterrupted run's.

The rest of resuming is checked in process: which records are reused or rerun and why
(tests/unit/test_nano.py, test_provenance.py), states of another configuration or left over
without --resume (tests/unit/test_train_resume.py), and FSDP's sharded state after a kill on
every rank (tests/integration/test_distributed.py).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from process_helpers import kill_when

STUDY = """
[study]
description = "a tiny Llama, post-trained with a resumable training state at every checkpoint"

[[models]]
spec = "tiny-llama"
key = "llama"
family = "tiny-llama"

[[models]]
spec = "tiny-qwen2"
key = "qwen"
family = "tiny-qwen2"
posttrain = { tokens = 512 }

[[methods]]
method = "dense"

[posttrain]
tokens = 8192
checkpoint_every = 512
batch_tokens = 512
micro_batch_tokens = 256
seq_len = 64
lr = 1e-3
eval_windows = 8
max_documents = 200
repeat = true
state_every = 1

[evaluation]
datasets = ["wikitext2"]
seq_lens = [64]
max_windows = 2
"""
CASE = "resume-llama-dense"  # killed, then resumed from its training state
DONE = "resume-qwen-dense"  # run alone first (-k), then reused by --resume


def _traj(rec: dict) -> list[tuple]:
    return [(c["tokens"], c["train_loss"], c["val_loss"]) for c in rec["posttrain"]["trajectory"]]


def _close(a: list[tuple], b: list[tuple]) -> bool:
    return len(a) == len(b) and all(x[0] == y[0] and x[1:] == pytest.approx(y[1:], rel=1e-6) for x, y in zip(a, b))


@pytest.fixture
def suite(bench_repo, tmp_path, monkeypatch):
    monkeypatch.setenv("PRUNEBENCH_CACHE_DIR", str(tmp_path / "cache"))
    (bench_repo.path / "resume.toml").write_text(STUDY)
    return bench_repo


@pytest.fixture(scope="module")
def straight(data_dir, tmp_path_factory) -> dict:
    """The killed case's record from an uninterrupted run (in process: the same runner, no kill).

    Module-scoped, so it runs before pytester takes its snapshot of sys.modules: what it imports
    stays imported after the test (pytester drops every module a test imports).
    """
    from bench.env import RunEnv
    from bench.harness.run_config import CommandLine
    from bench.harness.session import BenchSession

    root = tmp_path_factory.mktemp("straight")
    (root / "resume.toml").write_text(STUDY)
    session = BenchSession(CommandLine(study=str(root / "resume.toml"), report=False),
                           RunEnv.make(data_dir=data_dir, results_dir=root / "results", cache_dir=root / "cache"))
    rec = session.run_case(next(c for c in session.cases() if c.id == CASE)).to_json()
    assert not (root / "results" / "work").exists()  # the state goes once the record is written
    return rec


def test_pytest_bench_killed_mid_training_resumes_to_the_same_trajectory(straight, suite, tmp_path):
    ref = straight
    assert ref["posttrain"]["train_state"]["saves"] == 15  # one per checkpoint but the last

    args = ("--study", "resume.toml", "-p", "no:cacheprovider", "-q")
    results = tmp_path / "killed"
    suite.runpytest_subprocess(*args, f"--results-dir={results}", "-k", "qwen").assert_outcomes(passed=1)
    assert [p.stem for p in (results / "records").glob("*.json")] == [DONE]  # -k selects by readable id
    done = json.loads((results / "records" / f"{DONE}.json").read_text())

    proc = subprocess.Popen([sys.executable, "-m", "pytest", *args, f"--results-dir={results}", "--resume"],
                            cwd=suite.path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    state = kill_when((results / "work" / CASE / "train-state", "state-*/meta.json"), proc)
    assert not (results / "records" / f"{CASE}.json").exists()  # killed before its record: the case runs again
    step = json.loads((state / "meta.json").read_text())["step"]

    run = suite.runpytest_subprocess(*args, f"--results-dir={results}", "--resume")
    run.assert_outcomes(passed=2)
    run.stdout.fnmatch_lines([f"*{DONE}*resumed*"])
    assert json.loads((results / "records" / f"{DONE}.json").read_text())["created"] == done["created"]
    rec = json.loads((results / "records" / f"{CASE}.json").read_text())
    resumed = rec["posttrain"]["train_state"]["resumed_from"]
    assert resumed is not None and resumed["step"] >= step  # the newest state, maybe one saved after we looked
    assert _close(_traj(rec), _traj(ref)), "the resumed trajectory differs from the uninterrupted one"
    assert rec["posttrain"]["initial_val_loss"] == ref["posttrain"]["initial_val_loss"]
    assert rec["ppl"]["wikitext2:64"]["ppl"] == pytest.approx(ref["ppl"]["wikitext2:64"]["ppl"], rel=1e-6)
    assert not (results / "work").exists()
