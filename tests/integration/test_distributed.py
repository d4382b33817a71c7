"""Distributed post-training on CPU: gloo, 2 processes, a tiny fp32 model, an explicit CPU mesh.

DDP and FSDP2 trajectories must match the single-process one within 1e-5 relative (same data,
same seed; only the order of float32 sums differs), 2:4 masks must stay exact under sharding,
and the sharded state saved at the last checkpoint must hold the final weights. A run killed
on every rank resumes from its sharded state.
"""

from __future__ import annotations

from bench.env import RunEnv

import copy
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bench.training import distributed
from bench.errors import UsageError
from bench.sources.tiny import tiny_model
from bench.training.recipe import Recipe
from bench.training.trainer import train
from process_helpers import kill_when
from train_helpers import SEQ, windows

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch without torch.distributed")


def recipe(**kw) -> Recipe:
    base = dict(tokens=512, checkpoint_every=128, batch_tokens=128, micro_batch_tokens=32, seq_len=SEQ,
                lr=3e-3, weight_decay=0.1, eval_windows=4, repeat=True)
    base.update(kw)
    return Recipe(**base)


def model(tied: bool = False):
    # An odd dim-0 size (up_proj 72 rows -> 36 per rank, q_proj 48) and GQA: shards are not trivial.
    return tiny_model("llama", seed=5, hidden_size=48, intermediate_size=72, num_hidden_layers=2,
                      num_attention_heads=3, num_key_value_heads=1, head_dim=16, tie_word_embeddings=tied)


def _traj(res):
    return [(c["tokens"], c["train_loss"], c["val_loss"]) for c in res.trajectory]


@pytest.fixture(scope="module")
def nm_case():
    """A 2:4-pruned model, its masks, and the single-process reference run."""
    from bench.registry import make_config
    from pruners.registry import prune

    m = model()
    masks = prune(m, None, make_config("nm", n=2, m=4, nm_method="magnitude")).masks
    ref = copy.deepcopy(m)
    res = train(ref, windows(), recipe(), heldout=windows(4, seed=9), masks=masks)
    return m, masks, ref, res


@pytest.mark.parametrize("engine, checkpointing", [("ddp", False), ("fsdp", True)])
def test_two_process_trajectory_matches_one_process(engine, checkpointing, nm_case, tmp_path):
    """Activation checkpointing (the paper recipe's) only recomputes, so FSDP with it still matches."""
    from pruners.nm import check_pattern

    base, masks, ref, ref_res = nm_case
    m = copy.deepcopy(base)
    r = recipe(processes=2, engine=engine, grad_checkpointing=checkpointing)
    res = distributed.run(m, windows(), r, heldout=windows(4, seed=9), masks=masks, state_dir=tmp_path / "state")
    assert res.tokens == ref_res.tokens and res.micro_batches == ref_res.micro_batches
    assert res.initial_val_loss == pytest.approx(ref_res.initial_val_loss, rel=1e-5)
    for (t, tl, vl), (rt, rtl, rvl) in zip(_traj(res), _traj(ref_res), strict=True):
        assert t == rt and tl == pytest.approx(rtl, rel=1e-5) and vl == pytest.approx(rvl, rel=1e-5)
    for (name, p), q in zip(m.named_parameters(), ref.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6, msg=name)
    assert check_pattern(m, 2, 4) == []  # the full state dict rank 0 wrote keeps the exact pattern
    params = dict(m.named_parameters())
    assert all(bool((params[n][~k] == 0).all()) for n, k in masks.items())
    # The sharded state of the last checkpoint (DCP) loads without a process group and is the final model.
    import torch.distributed.checkpoint as dcp

    last = sorted((tmp_path / "state").iterdir())[-1]
    sd = {k: torch.empty_like(v) for k, v in m.state_dict().items() if k in dict(m.named_parameters())}
    dcp.load({"model": sd}, checkpoint_id=str(last))
    for k, v in sd.items():
        torch.testing.assert_close(v, m.state_dict()[k], rtol=0, atol=0, msg=k)


@pytest.mark.parametrize("engine", ["ddp", "fsdp"])
def test_two_process_distillation_matches_one_process(engine):
    """KD under DDP (teacher replicated) and FSDP2 (teacher's decoder layers sharded like the
    student's): the trajectory, its KD term included, within 1e-5 of one process."""
    teacher = tiny_model("llama", seed=6, hidden_size=64, intermediate_size=96, num_hidden_layers=3,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=16)
    r = recipe(objective="kd+ce", kd_weight=0.7, temperature=2.0)
    ref = model()
    ref_res = train(ref, windows(), r, heldout=windows(4, seed=9), teacher=copy.deepcopy(teacher))
    m = model()
    res = distributed.run(m, windows(), dataclasses.replace(r, processes=2, engine=engine), heldout=windows(4, seed=9),
                          teacher=teacher)
    for c, rc in zip(res.trajectory, ref_res.trajectory, strict=True):
        assert c["tokens"] == rc["tokens"] and c["train_kd"] == pytest.approx(rc["train_kd"], rel=1e-5)
        assert c["train_loss"] == pytest.approx(rc["train_loss"], rel=1e-5)
        assert c["val_loss"] == pytest.approx(rc["val_loss"], rel=1e-5)
    # The weights after 4 AdamW steps: the head's gradient is a float32 sum over positions whose
    # order differs between one process and two, and Adam's normalised step turns that rounding
    # into up to ~2e-6 on coordinates whose gradient is near 0 (the weights move by ~1.2e-2).
    for (name, p), q in zip(m.named_parameters(), ref.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=5e-6, msg=name)


def test_posttrain_fsdp_with_tied_embeddings_records_the_engine(data_dir):
    """The case-level entry: spawned FSDP on a tied model, 8 micro-batches a step, real corpus slices."""
    from bench.sources.tiny import byte_tokenizer
    from bench.training.posttrain import posttrain

    one = recipe(tokens=256, checkpoint_every=128, micro_batch_tokens=16, repeat=False)
    two = dataclasses.replace(one, processes=2, engine="fsdp")
    ref, ref_pt = posttrain(model(tied=True), byte_tokenizer(), one, RunEnv.make(data_dir=data_dir))
    m, pt = posttrain(model(tied=True), byte_tokenizer(), two, RunEnv.make(data_dir=data_dir))
    assert pt["distributed"] == {"processes": 2, "engine": "fsdp", "backend": "gloo", "param_dtype": "float32",
                                 "sharded_state": None}
    assert pt["micro_batches"] == ref_pt["micro_batches"] == 16 and pt["tokens"] == 256
    assert [c["val_loss"] for c in pt["trajectory"]] == pytest.approx([c["val_loss"] for c in ref_pt["trajectory"]],
                                                                      rel=1e-5)
    assert m.lm_head.weight is m.model.embed_tokens.weight  # still tied after loading the full state
    torch.testing.assert_close(m.lm_head.weight, ref.lm_head.weight, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- bad input (one line, before spawning)


def _many(processes: int, **kw) -> Recipe:
    """A recipe whose step splits into `processes` micro-batches, so only the machine can object."""
    t = SEQ * processes
    return recipe(processes=processes, tokens=t, checkpoint_every=t, batch_tokens=t, micro_batch_tokens=SEQ, **kw)


def _one_line(info) -> str:
    assert "\n" not in str(info.value)
    return str(info.value)


def test_more_processes_than_cpu_cores():
    import os

    n = 2 * (os.cpu_count() or 1)
    with pytest.raises(UsageError, match=rf"processes={n} but this machine has \d+ CPU core") as info:
        distributed.resolve_backend(_many(n), torch.device("cpu"))
    _one_line(info)


def test_more_processes_than_gpus():
    n = torch.cuda.device_count() + 2
    with pytest.raises(UsageError, match=rf"processes={n} but {n - 2} CUDA device\(s\) are visible") as info:
        distributed.resolve_backend(_many(n), torch.device("cuda"))
    _one_line(info)


@pytest.mark.skipif(torch.cuda.is_available(), reason="nccl is only a CUDA-only option on a machine without CUDA")
@pytest.mark.parametrize("engine", ["ddp", "fsdp"])
def test_nccl_on_a_cpu_only_machine(engine):
    with pytest.raises(UsageError, match="backend='nccl' is CUDA-only and this machine has no CUDA device") as info:
        distributed.resolve_backend(_many(2, backend="nccl", engine=engine), torch.device("cpu"))
    _one_line(info)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 CUDA devices to get past the device count")
def test_fsdp_on_gloo_with_cuda_tensors():
    with pytest.raises(UsageError, match="FSDP runs on gloo with CPU tensors or nccl with CUDA ones"):
        distributed.resolve_backend(_many(2, backend="gloo", engine="fsdp"), torch.device("cuda"))


@pytest.mark.parametrize("fields, message", [
    (dict(processes=3), "3 processes cannot split a step of 4 micro-batches"),
    (dict(engine="zero3"), "unknown post-training engine 'zero3'"),
    (dict(processes=2, engine="fsdp", param_dtype="float16"), "fp16 needs loss scaling"),
    (dict(processes=2, param_dtype="bfloat16"), "param_dtype=bfloat16 is an FSDP option"),
    (dict(processes=2, lora=True), "LoRA recovery runs in one process"),
    (dict(processes=0), "processes must be a positive integer"),
])
def test_bad_recipes(fields, message):
    with pytest.raises(UsageError, match=message):
        recipe(**fields)


def test_posttrain_refuses_before_reading_data(tmp_path):
    import os

    from bench.sources.tiny import byte_tokenizer
    from bench.training.posttrain import posttrain

    with pytest.raises(UsageError, match="CPU core"):  # refused before the (missing) data is looked for
        posttrain(model(), byte_tokenizer(), _many(2 * (os.cpu_count() or 1)), RunEnv.make(data_dir=tmp_path / "nowhere"))


def test_the_runner_spawns_a_distributed_case(data_dir, tmp_path):
    """A case whose recipe asks for 2 FSDP processes: the runner's record, masks and sharded state."""
    from bench.harness.runner import CaseRunner
    from bench.studies.cases import EvalSpec
    from case_helpers import make_case

    pt_opts = dict(tokens=256, checkpoint_every=128, batch_tokens=128, micro_batch_tokens=32, seq_len=32, lr=3e-3,
                   eval_windows=2, max_documents=4, processes=2, engine="fsdp")
    case = make_case("unit", "tiny-llama", "tiny", "nm", ratio=0.5, label="2of4",
                     options=dict(n=2, m=4, nm_method="magnitude"), evals=(EvalSpec("wikitext2", 32, 2),),
                     recipe=pt_opts, family="tiny")
    runner = CaseRunner(RunEnv.make(data_dir=data_dir, cache_dir=tmp_path / "cache", device="cpu"))
    fields = runner.run(case).to_json()
    pt = fields["posttrain"]
    assert fields["status"] == "ok" and pt["distributed"]["engine"] == "fsdp" and pt["distributed"]["processes"] == 2
    assert pt["masks_kept"] and pt["mask_violations"] == 0
    assert [c["tokens"] for c in pt["trajectory"]] == [128, 256]
    state = tmp_path / "cache" / "posttrain-state" / case.fingerprint()
    assert pt["distributed"]["sharded_state"] == str(state)
    assert sorted(p.name for p in state.iterdir()) == ["step-00000001", "step-00000002"]
    assert (state / "step-00000002" / "train_state.pt").is_file()


# ----------------------------------------------------------------------------- killed on every rank


DIST_CHILD = """
import sys
sys.path[:0] = [{here!r}, {tests!r}]  # this file's folder, and tests/ for the helper modules
from test_distributed import dist_recipe, model, windows
from bench.training import distributed
from bench.training.train_state import Checkpointer, StateStore

if __name__ == "__main__":
    distributed.run(model(), windows(), dist_recipe(), heldout=windows(4, seed=9),
                    state=Checkpointer(StateStore({root!r}, 1)))
"""


def dist_recipe():
    # 16 checkpoints, a sharded state at each: the kill comes at the first, long before the last.
    return Recipe(tokens=2048, checkpoint_every=128, batch_tokens=128, micro_batch_tokens=32, seq_len=16, lr=3e-3,
                  weight_decay=0.1, eval_windows=4, repeat=True, processes=2, engine="fsdp", state_every=1)


def test_fsdp_run_killed_on_every_rank_resumes_from_its_sharded_state(tmp_path, child_env):
    """The spawning process and both ranks SIGKILLed at once, once a sharded (DCP) state is on
    disk; a resumed run reads it back and ends where an uninterrupted run ends."""
    from bench.training.train_state import Checkpointer, StateStore

    root = tmp_path / "state"
    script = tmp_path / "child.py"
    here = Path(__file__).resolve().parent
    script.write_text(DIST_CHILD.format(here=str(here), tests=str(here.parent), root=str(root)))
    env = {**child_env, "TMPDIR": str(tmp_path)}  # the killed run's job directory stays in tmp_path
    proc = subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    state = kill_when((root, "state-*/meta.json"), proc)  # the spawner and both ranks, at once
    assert json.loads((state / "meta.json").read_text())["step"] < dist_recipe().steps

    ref = distributed.run(model(), windows(), dist_recipe(), heldout=windows(4, seed=9))
    resume = Checkpointer(StateStore(root, 1), resume_from=StateStore(root, 1).states()[-1])
    res = distributed.run(model(), windows(), dist_recipe(), heldout=windows(4, seed=9), state=resume)
    assert resume.report["resumed_from"]["step"] >= 1 and resume.report["ignored"] is None
    a, b = _traj(res), _traj(ref)
    assert len(a) == len(b) and all(x[0] == y[0] and x[1:] == pytest.approx(y[1:], rel=1e-6) for x, y in zip(a, b))
    assert res.micro_batches == ref.micro_batches and res.initial_val_loss == ref.initial_val_loss
