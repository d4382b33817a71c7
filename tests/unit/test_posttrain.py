"""Post-training loop: recipe validation, token accounting, checkpoints, masks, divergence, LoRA."""

from __future__ import annotations

from bench.env import RunEnv

import copy
import math

import pytest
import torch

from bench.errors import UsageError
from bench.sources.tiny import tiny_model
from bench.training.recipe import Recipe
from bench.training.posttrain import posttrain
from bench.training.trainer import train
from train_helpers import SEQ, windows


def recipe(**kw) -> Recipe:
    base = dict(tokens=1024, checkpoint_every=256, batch_tokens=128, micro_batch_tokens=32, seq_len=SEQ,
                lr=3e-3, warmup_tokens=0, eval_windows=4, repeat=True)
    base.update(kw)
    return Recipe(**base)


def model():
    return tiny_model("llama", hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=1, head_dim=16)


# ----------------------------------------------------------------------------- recipe validation


def test_budget_smaller_than_one_checkpoint_is_a_usage_error():
    with pytest.raises(UsageError, match="smaller than one checkpoint interval"):
        Recipe(tokens=4096, checkpoint_every=8192)


@pytest.mark.parametrize("fields, message", [
    (dict(corpus="wikitext3"), "unknown corpus 'wikitext3'.*did you mean 'wikitext2'"),
    (dict(batch_tokens=4096, micro_batch_tokens=3072), "multiple of micro_batch_tokens"),
    (dict(checkpoint_every=6144, tokens=12288), "checkpoint_every .* multiple of batch_tokens"),
    (dict(tokens=40960, checkpoint_every=16384), "multiple of checkpoint_every"),
    (dict(schedule="cosin"), "did you mean 'cosine'"),
    (dict(lr=float("nan")), "lr must be a number >= 0"),
    (dict(lr=-1e-3), "lr must be a number >= 0"),
    (dict(train_slice="heldout"), "train_slice must be pretrain or posttrain"),
])
def test_bad_recipes_are_usage_errors(fields, message):
    with pytest.raises(UsageError, match=message):
        Recipe(**fields)


def test_unknown_option_names_the_known_ones():
    with pytest.raises(UsageError, match="unknown post-training option 'learning_rate'"):
        Recipe.from_options({"learning_rate": 1e-3})
    assert Recipe.from_options({"lr": 1e-3, "tokens": 32768}).lr == 1e-3


def test_schedule_warmup_then_cosine_to_min():
    r = Recipe(tokens=40960, checkpoint_every=4096, batch_tokens=4096, lr=1.0, schedule="cosine",
               warmup_tokens=8192, min_lr_ratio=0.1)
    lrs = [r.lr_at(s) for s in range(r.steps)]
    assert lrs[0] == pytest.approx(0.5) and lrs[1] == pytest.approx(1.0)  # 2 warm-up steps
    assert lrs[-1] == pytest.approx(0.1) and all(a >= b for a, b in zip(lrs[1:], lrs[2:]))
    assert Recipe(lr=0.3).lr_at(7) == 0.3  # constant


# ----------------------------------------------------------------------------- accounting


def test_token_accounting_and_checkpoint_cadence_with_accumulation():
    r = recipe()  # 8 steps of 128 tokens, each 4 micro-batches of 2 sequences; checkpoint every 2 steps
    res = train(model(), windows(), r, heldout=windows(4, seed=9))
    assert r.accumulation == 4 and res.steps == 8 and res.micro_batches == 32 and res.tokens == 1024
    assert [c["tokens"] for c in res.trajectory] == [256, 512, 768, 1024]
    assert [c["step"] for c in res.trajectory] == [2, 4, 6, 8]
    assert all(math.isfinite(c["train_loss"]) and math.isfinite(c["val_loss"]) for c in res.trajectory)
    walls = [c["wall_s"] for c in res.trajectory]
    assert walls == sorted(walls) and res.initial_val_loss is not None
    assert res.trajectory[-1]["val_loss"] < res.initial_val_loss  # it learned something


def test_train_loss_is_the_interval_average():
    m, r = model(), recipe(tokens=512, checkpoint_every=512, lr=1e-9)  # lr ~0: loss ~constant per batch
    data = windows()
    res = train(m, data, r)
    order = torch.randperm(data.shape[0], generator=torch.Generator().manual_seed(r.seed * 1_000_003))
    with torch.no_grad():
        losses = [float(m(input_ids=data[order[i:i + 2]], labels=data[order[i:i + 2]]).loss) for i in range(0, 32, 2)]
    assert res.trajectory[0]["train_loss"] == pytest.approx(sum(losses) / len(losses), rel=1e-4)


def test_gradient_accumulation_matches_one_big_batch():
    data = windows()
    a, b = model(), model()
    train(a, data, recipe(tokens=256, checkpoint_every=256, micro_batch_tokens=128))  # 1 micro-batch per step
    train(b, data, recipe(tokens=256, checkpoint_every=256, micro_batch_tokens=32))  # 4 micro-batches per step
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(pa, pb, rtol=1e-4, atol=1e-6, msg=name)


def test_gradient_checkpointing_gives_the_same_training():
    data = windows()
    a, b = model(), model()
    ra = train(a, data, recipe(tokens=256, checkpoint_every=128))
    rb = train(b, data, recipe(tokens=256, checkpoint_every=128, grad_checkpointing=True))
    assert [c["train_loss"] for c in ra.trajectory] == pytest.approx([c["train_loss"] for c in rb.trajectory], rel=1e-5)
    assert not b.is_activation_checkpointing  # switched off again afterwards


def test_budget_beyond_the_slice_needs_repeat():
    with pytest.raises(UsageError, match="exceeds the posttrain slice"):
        train(model(), windows(8), recipe(repeat=False))


# ----------------------------------------------------------------------------- masks


def test_two_four_masks_hold_at_every_checkpoint():
    from pruners.nm import check_pattern
    from bench.registry import make_config
    from pruners.registry import prune

    m = model()
    report = prune(m, None, make_config("nm", n=2, m=4, nm_method="magnitude"))
    masks = report.masks
    before = {n: p.detach().clone() for n, p in m.named_parameters()}
    seen = []

    def at_checkpoint(mod):
        params = dict(mod.named_parameters())
        zeros_ok = all(bool((params[n][~k] == 0).all()) for n, k in masks.items())
        seen.append(zeros_ok)
        return {"zeros_ok": zeros_ok}

    res = train(m, windows(), recipe(lr=1e-2), masks=masks, checkpoint_eval=at_checkpoint)
    assert seen == [True] * 4 and not res.diverged
    assert check_pattern(m, 2, 4) == []
    params = dict(m.named_parameters())
    for n, k in masks.items():  # the kept weights did train
        assert not torch.equal(params[n][k], before[n][k])


# ----------------------------------------------------------------------------- divergence


def test_huge_lr_diverges_and_keeps_the_trajectory():
    r = recipe(lr=1e30, checkpoint_every=128, tokens=1024, grad_clip=0.0)
    res = train(model(), windows(), r, heldout=windows(4, seed=9))
    assert res.diverged
    div = res.divergence
    assert div["step"] < r.steps and res.tokens < r.tokens
    assert len(res.trajectory) <= div["step"] + 1  # checkpoints up to the divergence are kept
    assert all(math.isfinite(c["train_loss"]) for c in res.trajectory)
    bad = [div.get("loss"), div.get("val_loss"), div.get("grad_norm")]
    assert any(v is not None and not math.isfinite(v) for v in bad)
    assert res.to_dict()["diverged"] is True


# ----------------------------------------------------------------------------- LoRA and the case-level entry


def test_lora_trains_adapters_only_and_merges(data_dir):
    from bench.sources.tiny import byte_tokenizer

    m = model()
    total = sum(p.numel() for p in m.parameters())
    before = copy.deepcopy(m.state_dict())
    r = recipe(tokens=256, checkpoint_every=128, batch_tokens=128, micro_batch_tokens=128, lora=True, lr=1e-2,
               repeat=False)
    out_model, pt = posttrain(m, byte_tokenizer(), r, RunEnv.make(data_dir=data_dir))
    assert 0 < pt["trainable_params"] < total / 4
    assert not any("lora" in n for n, _ in out_model.named_parameters())  # merged and unwrapped
    after = out_model.state_dict()
    assert set(after) == set(before)
    assert not torch.equal(after["model.layers.0.self_attn.q_proj.weight"], before["model.layers.0.self_attn.q_proj.weight"])
    torch.testing.assert_close(after["model.embed_tokens.weight"], before["model.embed_tokens.weight"])  # frozen
    assert [c["tokens"] for c in pt["trajectory"]] == [128, 256] and pt["recipe"]["lora"] is True


def test_lora_refuses_nm_masks(data_dir):
    from bench.sources.tiny import byte_tokenizer

    masks = {"model.layers.0.mlp.up_proj.weight": torch.ones(64, 32, dtype=torch.bool)}
    with pytest.raises(UsageError, match="LoRA recovery cannot keep an N:M mask"):
        posttrain(model(), byte_tokenizer(), recipe(lora=True), RunEnv.make(data_dir=data_dir), masks=masks)


def test_posttrain_records_slices_and_fixed_heldout(data_dir):
    from bench.sources.tiny import byte_tokenizer

    r = recipe(tokens=256, checkpoint_every=128, batch_tokens=128, micro_batch_tokens=128, repeat=False)
    _, a = posttrain(model(), byte_tokenizer(), r, RunEnv.make(data_dir=data_dir))
    _, b = posttrain(model(), byte_tokenizer(), r, RunEnv.make(data_dir=data_dir))
    assert a["initial_val_loss"] == b["initial_val_loss"]  # same model, same fixed windows
    assert a["eval_tokens"] == r.eval_windows * r.seq_len
    assert a["slices"]["documents_per_slice"]["heldout"] >= 1 and a["slices"]["corpus"] == "wikitext2"


# ----------------------------------------------------------------------------- L0 and the trajectory


def test_zero_lr_checkpoint_equals_l0_of_a_low_precision_base(data_dir):
    """L0 and every checkpoint come from one numeric path, even when the base is held in bf16.

    The base is bf16 (as the runner holds it on CUDA); training holds float32 master weights.
    With lr=0 no weight moves, so the first checkpoint must equal L0 exactly (same function,
    same weights, same windows and batches: no tolerance is needed).
    """
    from bench.sources.tiny import byte_tokenizer
    from bench.training.posttrain import initial_loss

    tok = byte_tokenizer()
    base = model().to(torch.bfloat16)
    before = {k: v.clone() for k, v in base.state_dict().items()}
    r = recipe(tokens=256, checkpoint_every=128, batch_tokens=128, micro_batch_tokens=64, lr=0.0,
               weight_decay=0.1, repeat=False)
    l0 = initial_loss(base, tok, r, RunEnv.make(data_dir=data_dir))
    for k, v in base.state_dict().items():  # the base comes back bit for bit, in bf16
        assert v.dtype == before[k].dtype and torch.equal(v, before[k]), k
    _, pt = posttrain(copy.deepcopy(base), tok, r, RunEnv.make(data_dir=data_dir))
    assert pt["initial_val_loss"] == l0
    assert [c["val_loss"] for c in pt["trajectory"]] == [l0, l0]
    # The check has teeth: the bf16 weights measured as they are give another number.
    from bench.evaluation.perplexity import window_nll_sum
    from bench.training.posttrain import heldout_windows

    held = heldout_windows(tok, r, RunEnv.make(data_dir=data_dir))
    total, n = window_nll_sum(base, held, r.eval_batch_size)
    assert total / n != l0
