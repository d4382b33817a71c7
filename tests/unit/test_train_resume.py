"""Resumable training states in one process (`bench.training.train_state`): save, fresh objects, load, continue.

A run that saves its state, then a fresh model that loads it and continues, must end exactly
where a run that never stopped ends: the same trajectory and the same weights, bit for bit (same
process, same kernels). Dropout is on and the budget is several passes over the windows, so the
RNG and the data position have to come back too. States the loop or the runner cannot vouch for
are ignored with a reason, and the run starts fresh.
"""

from __future__ import annotations

import copy
import json

import pytest
import torch

from bench.errors import UsageError
from bench.sources.tiny import tiny_model
from bench.training.recipe import Recipe
from bench.training.trainer import train
from bench.training.train_state import Checkpointer, StateStore
import train_helpers
from train_helpers import SEQ


def windows(n: int = 24, seed: int = 0) -> torch.Tensor:
    """24 windows against a 64-window budget: almost three passes."""
    return train_helpers.windows(n, seed)


def recipe(**kw) -> Recipe:
    base = dict(tokens=1024, checkpoint_every=128, batch_tokens=64, micro_batch_tokens=32, seq_len=SEQ, lr=3e-3,
                weight_decay=0.1, eval_windows=4, repeat=True, state_every=3)
    base.update(kw)
    return Recipe(**base)


def model(dropout: float = 0.2):
    return tiny_model("llama", hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                      num_key_value_heads=1, head_dim=16, attention_dropout=dropout)


def _traj(res) -> list[tuple]:
    return [(c["tokens"], c["step"], c["train_loss"], c["val_loss"], c["lr"]) for c in res.trajectory]


def _same_weights(a, b) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


@pytest.fixture(scope="module")
def straight():
    """The initial model and an uninterrupted run from it."""
    m0 = model()
    ref = copy.deepcopy(m0)
    return m0, ref, train(ref, windows(), recipe(), heldout=windows(4, seed=9))


def _save_run(m0, tmp_path, r=None, **kw):
    """A run that saves states as it goes; returns (its result, the store)."""
    store = StateStore(tmp_path / "state", (r or recipe()).state_every)
    res = train(copy.deepcopy(m0), windows(), r or recipe(), heldout=windows(4, seed=9), state=Checkpointer(store),
                **kw)
    return res, store


def test_resume_continues_bit_for_bit(straight, tmp_path):
    m0, ref, ref_res = straight
    saved_res, store = _save_run(m0, tmp_path)
    assert _traj(saved_res) == _traj(ref_res)  # saving changes nothing
    # 8 checkpoints, a state every 3rd: saved after 3 and 6; only the newest is kept.
    assert [p.name for p in store.states()] == ["state-00000012"]
    meta = json.loads((store.states()[-1] / "meta.json").read_text())
    assert meta["tokens"] == 768 and meta["checkpoints"] == 6 and meta["bytes"] > 0
    state = Checkpointer(store, resume_from=store.states()[-1])
    fresh = copy.deepcopy(m0)  # a fresh model and a fresh optimizer, as after a kill
    res = train(fresh, windows(), recipe(), heldout=windows(4, seed=9), state=state)
    assert state.report["resumed_from"] == {"step": 12, "tokens": 768, "dir": "state-00000012"}
    assert _traj(res) == _traj(ref_res)
    assert res.initial_val_loss == ref_res.initial_val_loss and res.micro_batches == ref_res.micro_batches
    assert _same_weights(fresh, ref)


def test_dropout_and_data_order_are_what_the_state_restores(straight, tmp_path):
    """The test above could not tell a lost RNG or data position apart if neither mattered."""
    m0, _, ref_res = straight
    no_dropout = train(model(dropout=0.0), windows(), recipe(), heldout=windows(4, seed=9))
    other_order = train(copy.deepcopy(m0), windows(), recipe(seed=1), heldout=windows(4, seed=9))
    assert _traj(no_dropout) != _traj(ref_res) and _traj(other_order) != _traj(ref_res)


def test_masks_stay_exact_across_a_resume(tmp_path):
    from bench.registry import make_config
    from pruners.registry import prune

    m0 = model(dropout=0.0)
    masks = prune(m0, None, make_config("nm", n=2, m=4, nm_method="magnitude")).masks
    r = recipe(state_every=2)
    ref = copy.deepcopy(m0)
    ref_res = train(ref, windows(), r, heldout=windows(4, seed=9), masks=masks)
    _, store = _save_run(m0, tmp_path, r, masks=masks)
    fresh = copy.deepcopy(m0)
    res = train(fresh, windows(), r, heldout=windows(4, seed=9), masks=masks,
                state=Checkpointer(store, resume_from=store.states()[-1]))
    assert _traj(res) == _traj(ref_res) and _same_weights(fresh, ref)
    params = dict(fresh.named_parameters())
    assert all(bool((params[n][~k] == 0).all()) for n, k in masks.items())


def test_a_truncated_state_is_ignored_and_the_run_starts_fresh(straight, tmp_path, capsys):
    m0, _, ref_res = straight
    _, store = _save_run(m0, tmp_path)
    weights = store.states()[-1] / "weights.pt"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    state = Checkpointer(store, resume_from=store.states()[-1])
    res = train(copy.deepcopy(m0), windows(), recipe(), heldout=windows(4, seed=9), state=state)
    assert state.report["resumed_from"] is None and "weights.pt does not load" in state.report["ignored"]
    assert "ignored: weights.pt does not load" in capsys.readouterr().err
    assert _traj(res) == _traj(ref_res)  # fresh from step 0, and nothing of the damaged state was applied


def test_a_state_of_other_windows_is_ignored(straight, tmp_path, capsys):
    m0, _, _ = straight
    _, store = _save_run(m0, tmp_path)
    state = Checkpointer(store, resume_from=store.states()[-1])
    other = windows(seed=3)
    res = train(copy.deepcopy(m0), other, recipe(), heldout=windows(4, seed=9), state=state)
    assert state.report["ignored"] == "different inputs: windows changed"
    assert "different inputs: windows changed; starting fresh" in capsys.readouterr().err
    assert res.trajectory[0]["step"] == 2  # from the start


def test_an_interrupted_save_is_never_read(straight, tmp_path):
    """A kill inside a save leaves a .partial directory: not a state, and removed by the next save."""
    m0, _, _ = straight
    _, store = _save_run(m0, tmp_path)
    partial = store.begin(14)
    (partial / "weights.pt").write_bytes(b"half")
    assert [p.name for p in store.states()] == ["state-00000012"]
    store.begin(16)
    store.commit(16, {"tokens": 1024})  # the next save (meta only: this checks the layout)
    assert sorted(p.name for p in store.root.iterdir()) == ["state-00000016"]


def test_a_state_without_meta_is_named(tmp_path):
    store = StateStore(tmp_path / "s", 1)
    (store.root / "state-00000004").mkdir(parents=True)
    path, meta, why = store.latest()
    assert path is None and "state-00000004 has no readable meta.json" in why


@pytest.mark.parametrize("value", [0, -2, 1.5, True, "2"])
def test_bad_state_every_names_the_key(value):
    with pytest.raises(UsageError, match=r"post-training state_every must be a positive integer") as info:
        recipe(state_every=value)
    assert "\n" not in str(info.value)


def test_state_every_is_out_of_to_dict_when_unset():
    assert "state_every" not in Recipe().to_dict()
    assert Recipe(state_every=4).to_dict()["state_every"] == 4
    assert Recipe.from_options({"state_every": 2}).state_every == 2


# ----------------------------------------------------------------------------- the runner's policy


def _case(**pt):
    from bench.studies.cases import EvalSpec
    from case_helpers import make_case

    options = dict(tokens=512, checkpoint_every=128, batch_tokens=128, micro_batch_tokens=64, seq_len=32, lr=3e-3,
                   eval_windows=2, max_documents=8, repeat=True, state_every=1)
    options.update(pt)
    return make_case("unit", "tiny-llama", "tiny", "dense", evals=(EvalSpec("wikitext2", 32, 2),), recipe=options,
                     family="tiny")


def _runner(tmp_path, resume: bool):
    from bench.env import RunEnv
    from bench.harness.runner import CaseRunner

    return CaseRunner(RunEnv.make(cache_dir=tmp_path / "cache", device="cpu", results_dir=tmp_path / "results"),
                      resume=resume)


@pytest.fixture
def stopped(data_dir, tmp_path, monkeypatch):
    """A case run to the end but stopped before its record (so its newest state is left behind)."""
    monkeypatch.setenv("PRUNEBENCH_DATA_DIR", str(data_dir))
    case = _case()
    runner = _runner(tmp_path, resume=False)
    fields = runner.run(case).to_json()
    work = runner.work_dir(case)
    assert work == tmp_path / "results" / "work" / case.id
    assert [p.name for p in (work / "train-state").iterdir()] == ["state-00000003"]  # after checkpoint 3 of 4
    return case, fields, work


def test_runner_resumes_a_matching_state_and_case_done_removes_it(stopped, tmp_path):
    case, fields, work = stopped
    runner = _runner(tmp_path, resume=True)
    again = runner.run(case).to_json()
    ts = again["posttrain"]["train_state"]
    assert ts["resumed_from"] == {"step": 3, "tokens": 384, "dir": "state-00000003"} and ts["ignored"] is None
    assert [(c["tokens"], c["train_loss"], c["val_loss"]) for c in again["posttrain"]["trajectory"]] == \
        [(c["tokens"], c["train_loss"], c["val_loss"]) for c in fields["posttrain"]["trajectory"]]
    assert again["ppl"]["wikitext2:32"]["nll"] == fields["ppl"]["wikitext2:32"]["nll"]  # the same final weights
    runner.case_done(case)
    assert not work.exists() and not work.parent.exists()


def test_runner_ignores_a_state_of_another_config_or_provenance(stopped, tmp_path, capsys):
    case, _, work = stopped
    meta_path = work / "train-state" / "state-00000003" / "meta.json"
    meta = json.loads(meta_path.read_text())
    runner = _runner(tmp_path, resume=True)
    prov = meta["identity"]["provenance"]
    other = {**prov, "dtype": "bfloat16"}
    state = runner.checkpointer(case, case.recipe, provenance=other)
    assert state.resume_from is None and "state-00000003: dtype float32 -> bfloat16" in state.report["ignored"]
    assert "starting fresh" in capsys.readouterr().err
    assert not (work / "train-state").exists()  # removed, so it cannot be picked up later either


def test_runner_names_a_foreign_fingerprint_and_removes_leftovers_without_resume(stopped, tmp_path):
    case, _, work = stopped
    recipe_ = case.recipe
    prov = json.loads((work / "train-state" / "state-00000003" / "meta.json").read_text())["identity"]["provenance"]
    other = _case(lr=1e-3)  # same id (so the same working area), another configuration
    assert other.id == case.id and other.fingerprint() != case.fingerprint()
    state = _runner(tmp_path, resume=True).checkpointer(other, other.recipe, prov)
    assert state.report["ignored"] == f"state-00000003: config {case.fingerprint()} -> {other.fingerprint()}"
    (work / "train-state" / "state-00000001").mkdir(parents=True)
    state = _runner(tmp_path, resume=False).checkpointer(case, recipe_, prov)
    assert state.resume_from is None and "this run has no --resume" in state.report["ignored"]
    assert not (work / "train-state").exists()


def test_lora_adapters_and_their_dropout_resume_too(tmp_path):
    pytest.importorskip("peft")
    from bench.training.trainer import add_lora

    def lora_model():
        torch.manual_seed(0)  # peft draws the adapters' initial A from the global generator
        return add_lora(copy.deepcopy(m0), r)

    r = recipe(lora=True, lora_dropout=0.3, state_every=2)
    m0 = model(dropout=0.0)
    ref = lora_model()
    ref_res = train(ref, windows(), r, heldout=windows(4, seed=9))
    store = StateStore(tmp_path / "s", 2)
    train(lora_model(), windows(), r, heldout=windows(4, seed=9), state=Checkpointer(store))
    torch.manual_seed(1)
    fresh = add_lora(copy.deepcopy(m0), r)  # other initial adapters: the state replaces them
    res = train(fresh, windows(), r, heldout=windows(4, seed=9),
                state=Checkpointer(store, resume_from=store.states()[-1]))
    assert res.trajectory[0]["train_s"] > 0 and _traj(res) == _traj(ref_res)
    assert _same_weights(fresh, ref)


def test_a_study_file_takes_state_every_and_names_a_bad_one(tmp_path):
    from bench.studies.schema import load_study

    study = ('[study]\ndescription = "x"\n[[models]]\nspec = "tiny-llama"\nkey = "l"\nfamily = "t"\n'
             '[[methods]]\nmethod = "dense"\n[posttrain]\ntokens = 512\ncheckpoint_every = 128\nbatch_tokens = 128\n'
             'micro_batch_tokens = 128\nseq_len = 32\nstate_every = {}\n[evaluation]\ndatasets = ["wikitext2"]\nseq_lens = [32]\n')
    path = tmp_path / "s.toml"
    path.write_text(study.format(2))
    assert dict(load_study(path).posttrain)["state_every"] == 2
    path.write_text(study.format(0))
    with pytest.raises(UsageError, match=rf"study {path}: posttrain: post-training state_every must be a positive"):
        load_study(path)
