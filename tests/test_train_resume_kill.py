"""A killed post-training run resumes where its last training state left off (real kills).

`pytest bench` runs a tiny study whose recipe saves a training state at every checkpoint; the
test SIGKILLs it once a state is on disk, reruns with ``--resume``, and the resumed record's
trajectory must equal an uninterrupted run's. The same for 2 gloo processes under FSDP: the
spawning process and both ranks are killed together, and the resumed run reads the sharded
(DCP) state back.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

STUDY = """
[study]
description = "a tiny Llama, post-trained with a resumable training state at every checkpoint"

[[models]]
spec = "tiny-llama"
key = "llama"
family = "tiny-llama"

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
CASE = "resume-llama-dense"


def _kill_when(path_glob: tuple[Path, str], proc: subprocess.Popen, timeout: float = 600.0) -> Path:
    """SIGKILL `proc`'s whole process group as soon as a complete state (its meta.json) exists."""
    root, pattern = path_glob
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = sorted(root.glob(pattern))
        if found:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return found[-1].parent
        if proc.poll() is not None:
            pytest.fail(f"the run ended (exit {proc.returncode}) before it saved a training state")
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    pytest.fail("no training state appeared in time")


def _traj(rec: dict) -> list[tuple]:
    return [(c["tokens"], c["train_loss"], c["val_loss"]) for c in rec["posttrain"]["trajectory"]]


def _close(a: list[tuple], b: list[tuple]) -> bool:
    return len(a) == len(b) and all(x[0] == y[0] and x[1:] == pytest.approx(y[1:], rel=1e-6) for x, y in zip(a, b))


@pytest.fixture
def suite(bench_repo):
    (bench_repo.path / "resume.toml").write_text(STUDY)
    return bench_repo


def test_pytest_bench_killed_mid_training_resumes_to_the_same_trajectory(suite, tmp_path):
    args = ("--study", "resume.toml", "-p", "no:cacheprovider", "-q")
    straight = tmp_path / "straight"
    suite.runpytest_subprocess(*args, f"--results-dir={straight}").assert_outcomes(passed=1)
    ref = json.loads((straight / "records" / f"{CASE}.json").read_text())
    assert ref["posttrain"]["train_state"]["saves"] == 15  # one per checkpoint but the last
    assert not (straight / "work").exists()  # the state goes once the record is written

    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "pytest", *args, f"--results-dir={killed}"], cwd=suite.path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    state = _kill_when((killed / "work" / CASE / "train-state", "state-*/meta.json"), proc)
    assert not (killed / "records" / f"{CASE}.json").exists()  # killed before its record: the case runs again
    step = json.loads((state / "meta.json").read_text())["step"]

    run = suite.runpytest_subprocess(*args, f"--results-dir={killed}", "--resume")
    run.assert_outcomes(passed=1)
    rec = json.loads((killed / "records" / f"{CASE}.json").read_text())
    resumed = rec["posttrain"]["train_state"]["resumed_from"]
    assert resumed is not None and resumed["step"] >= step  # the newest state, maybe one saved after we looked
    assert _close(_traj(rec), _traj(ref)), "the resumed trajectory differs from the uninterrupted one"
    assert rec["posttrain"]["initial_val_loss"] == ref["posttrain"]["initial_val_loss"]
    assert rec["ppl"]["wikitext2:64"]["ppl"] == pytest.approx(ref["ppl"]["wikitext2:64"]["ppl"], rel=1e-6)
    assert not (killed / "work").exists()


def test_a_leftover_state_without_resume_or_of_another_config_is_not_used(suite, tmp_path):
    args = ("--study", "resume.toml", "-p", "no:cacheprovider", "-q")
    results = tmp_path / "r"
    proc = subprocess.Popen([sys.executable, "-m", "pytest", *args, f"--results-dir={results}"], cwd=suite.path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    state = _kill_when((results / "work" / CASE / "train-state", "state-*/meta.json"), proc)
    meta = json.loads((state / "meta.json").read_text())
    meta["identity"]["fingerprint"] = "0123456789abcdef"  # as if saved by another configuration
    (state / "meta.json").write_text(json.dumps(meta))
    run = suite.runpytest_subprocess(*args, f"--results-dir={results}", "--resume", "-s")
    run.assert_outcomes(passed=1)
    rec = json.loads((results / "records" / f"{CASE}.json").read_text())
    ts = rec["posttrain"]["train_state"]
    assert ts["resumed_from"] is None and "config 0123456789abcdef -> " in ts["ignored"]
    assert f"config 0123456789abcdef -> {rec['fingerprint']}; starting fresh" in run.stderr.str()
    assert rec["posttrain"]["trajectory"][0]["tokens"] == 512

    (results / "records" / f"{CASE}.json").unlink()  # a stopped run again, now rerun without --resume
    (state.parent).mkdir(parents=True, exist_ok=True)
    (state.parent / "state-00000004").mkdir()
    run = suite.runpytest_subprocess(*args, f"--results-dir={results}")
    run.assert_outcomes(passed=1)
    ts = json.loads((results / "records" / f"{CASE}.json").read_text())["posttrain"]["train_state"]
    assert ts["resumed_from"] is None and "this run has no --resume" in ts["ignored"]


# ----------------------------------------------------------------------------- distributed


DIST_CHILD = """
import sys
sys.path.insert(0, {tests!r})
from test_distributed import model, windows
from test_train_resume_kill import dist_recipe
from bench.training import distributed
from bench.training.train_state import Checkpointer, StateStore

if __name__ == "__main__":
    distributed.run(model(), windows(), dist_recipe(), heldout=windows(4, seed=9),
                    state=Checkpointer(StateStore({root!r}, 1)))
"""


def dist_recipe():
    from bench.training.recipe import Recipe

    return Recipe(tokens=8192, checkpoint_every=128, batch_tokens=128, micro_batch_tokens=32, seq_len=16, lr=3e-3,
                  weight_decay=0.1, eval_windows=4, repeat=True, processes=2, engine="fsdp", state_every=1)


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch without torch.distributed")
def test_fsdp_run_killed_on_every_rank_resumes_from_its_sharded_state(tmp_path):
    sys.path.insert(0, str(Path(__file__).parent))
    from test_distributed import model, windows

    from bench.training import distributed
    from bench.training.train_state import Checkpointer, StateStore

    root = tmp_path / "state"
    script = tmp_path / "child.py"
    script.write_text(DIST_CHILD.format(tests=str(Path(__file__).parent), root=str(root)))
    env = {**os.environ, "TMPDIR": str(tmp_path)}  # the killed run's job directory stays in tmp_path
    proc = subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    state = _kill_when((root, "state-*/meta.json"), proc)  # the spawner and both ranks, at once
    assert json.loads((state / "meta.json").read_text())["step"] < dist_recipe().steps

    ref = distributed.run(model(), windows(), dist_recipe(), heldout=windows(4, seed=9))
    resume = Checkpointer(StateStore(root, 1), resume_from=StateStore(root, 1).states()[-1])
    res = distributed.run(model(), windows(), dist_recipe(), heldout=windows(4, seed=9), state=resume)
    assert resume.report["resumed_from"]["step"] >= 1 and resume.report["ignored"] is None
    a = [(c["tokens"], c["train_loss"], c["val_loss"]) for c in res.trajectory]
    b = [(c["tokens"], c["train_loss"], c["val_loss"]) for c in ref.trajectory]
    assert _close(a, b)
    assert res.micro_batches == ref.micro_batches and res.initial_val_loss == ref.initial_val_loss
