"""Recovery by distillation (issue 21): the chunked KD loss against the full computation, the
recipe's objective fields, training under KD, and the log-spaced checkpoints of issue 20."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from bench.env import RunEnv
from bench.errors import UsageError
from bench.sources.tiny import byte_tokenizer, tiny_model
from bench.training import distill
from bench.training.posttrain import posttrain
from bench.training.recipe import Recipe
from bench.training.trainer import train
from train_helpers import SEQ, windows


def recipe(**kw) -> Recipe:
    base = dict(tokens=512, checkpoint_every=128, batch_tokens=128, micro_batch_tokens=64, seq_len=SEQ,
                lr=3e-3, warmup_tokens=0, eval_windows=4, repeat=True)
    return Recipe(**(base | kw))


def model(layers: int = 2, hidden: int = 32, seed: int = 0):
    torch.manual_seed(seed)
    return tiny_model("llama", hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                      num_attention_heads=2, num_key_value_heads=1, head_dim=hidden // 2)


# ----------------------------------------------------------------------------- the loss


@pytest.mark.parametrize("temperature,kd_weight", [(1.0, 1.0), (2.0, 1.0), (1.0, 0.7), (2.0, 0.0)])
@pytest.mark.parametrize("bias", [False, True])
def test_chunked_kd_loss_equals_the_full_logits_computation(monkeypatch, temperature, kd_weight, bias):
    """Values and gradients of the chunked loss, its gradients made in closed form in the forward,
    equal KL and CE on full logits through autograd."""
    monkeypatch.setattr(distill, "CHUNK_ELEMENTS", 3 * 2 * 50)  # 3 positions a chunk: 5 chunks
    g = torch.Generator().manual_seed(1)
    b, s, hs, ht, v = 2, 16, 12, 20, 50
    h_s = torch.randn(b, s, hs, generator=g, requires_grad=True)
    h_t = torch.randn(b, s, ht, generator=g)
    head_s, head_t = torch.nn.Linear(hs, v, bias=bias), torch.nn.Linear(ht, v, bias=bias)
    ids = torch.randint(0, v, (b, s), generator=g)

    loss, kd, ce = distill.kd_loss(h_s, head_s, h_t, head_t, ids, temperature, kd_weight)
    (2.5 * loss).backward()  # an outer factor (a micro-batch's share) reaches every gradient
    got = [t.grad.clone() for t in (h_s, head_s.weight, head_s.bias) if t is not None]
    for t in (h_s, head_s.weight, head_s.bias):
        if t is not None:
            t.grad = None

    ls, lt = head_s(h_s[:, :-1]), head_t(h_t[:, :-1]).detach()
    ref_kd = F.kl_div(F.log_softmax(ls / temperature, -1).reshape(-1, v), F.log_softmax(lt / temperature, -1).reshape(-1, v),
                      log_target=True, reduction="batchmean") * temperature ** 2
    ref_ce = F.cross_entropy(ls.reshape(-1, v), ids[:, 1:].reshape(-1))
    (2.5 * (kd_weight * ref_kd + (1 - kd_weight) * ref_ce)).backward()
    torch.testing.assert_close(kd, ref_kd.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ce, ref_ce.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(loss, (kd_weight * ref_kd + (1 - kd_weight) * ref_ce).detach(), rtol=1e-5, atol=1e-6)
    want = [t.grad for t in (h_s, head_s.weight, head_s.bias) if t is not None]
    for a, w in zip(got, want, strict=True):
        torch.testing.assert_close(a, w, rtol=1e-4, atol=1e-7)
    assert head_t.weight.grad is None  # the teacher gets no gradient
    assert not kd.requires_grad and not ce.requires_grad  # only the loss carries the graph


def test_a_frozen_head_gets_no_gradient_and_the_hidden_states_theirs():
    """Under LoRA the head is frozen: the loss makes no gradient for it, only for the states."""
    g = torch.Generator().manual_seed(2)
    h_s = torch.randn(2, 9, 12, generator=g, requires_grad=True)
    h_t = torch.randn(2, 9, 16, generator=g)
    head_s, head_t = torch.nn.Linear(12, 40, bias=False), torch.nn.Linear(16, 40, bias=False)
    head_s.weight.requires_grad_(False)
    ids = torch.randint(0, 40, (2, 9), generator=g)
    loss, _, _ = distill.kd_loss(h_s, head_s, h_t, head_t, ids, 1.0, 0.5)
    loss.backward()
    got, h_s.grad = h_s.grad.clone(), None
    ls, lt = head_s(h_s[:, :-1]), head_t(h_t[:, :-1])
    ref = 0.5 * F.kl_div(F.log_softmax(ls, -1).reshape(-1, 40), F.log_softmax(lt, -1).reshape(-1, 40),
                         log_target=True, reduction="batchmean") + 0.5 * F.cross_entropy(ls.reshape(-1, 40),
                                                                                         ids[:, 1:].reshape(-1))
    ref.backward()
    torch.testing.assert_close(got, h_s.grad, rtol=1e-4, atol=1e-7)
    assert head_s.weight.grad is None


def test_a_student_that_is_its_teacher_has_zero_kd_and_its_own_ce():
    student = model()
    teacher = copy.deepcopy(student)
    x = windows(4)
    with distill.Distillation(student, teacher, "kd") as kd:
        out = student(**kd.inputs(x))
        terms = kd.terms()
    assert out.logits.numel() == 0  # no full logits were made
    assert abs(float(terms.kd)) < 1e-6
    torch.testing.assert_close(terms.ce, student(input_ids=x, labels=x).loss.detach(), rtol=1e-5, atol=1e-6)
    assert not student._forward_hooks and not student.model._forward_hooks  # closed


# ----------------------------------------------------------------------------- training


def test_kd_weight_zero_trains_exactly_as_cross_entropy():
    """kd+ce at kd_weight 0 goes through the distillation path with only its CE term: the same
    trajectory as the trainer's own CE path, so the hook-computed loss is the model's loss."""
    x, held = windows(), windows(8, seed=9)
    teacher = model(seed=5)
    a, b = model(), model()
    ce = train(a, x, recipe(), heldout=held)
    mixed = train(b, x, recipe(objective="kd+ce", kd_weight=0.0), heldout=held, teacher=teacher)
    for p, q in zip(ce.trajectory, mixed.trajectory):
        assert p["val_loss"] == pytest.approx(q["val_loss"], rel=1e-5)
        assert p["train_loss"] == pytest.approx(q["train_loss"], rel=1e-5)
        assert "train_kd" in q and "train_kd" not in p


def test_kd_training_moves_the_student_towards_its_teacher_and_leaves_the_teacher_alone():
    x, held = windows(), windows(8, seed=9)
    teacher = model(layers=3, hidden=48, seed=5)  # another width: the heads differ, the vocabulary does not
    frozen = copy.deepcopy(teacher.state_dict())
    student = model()
    out = train(student, x, recipe(objective="kd", temperature=1.0, lr=1e-2), heldout=held, teacher=teacher)
    kd = [c["train_kd"] for c in out.trajectory]
    assert kd[-1] < kd[0]
    assert all(torch.equal(frozen[k], v) for k, v in teacher.state_dict().items())
    assert all("val_loss" in c for c in out.trajectory)  # the held-out loss is still next-token CE


def test_a_null_kd_run_keeps_every_checkpoint_at_l0():
    held = windows(8, seed=9)
    student, teacher = model(), model(seed=5)
    with torch.no_grad():
        l0 = float(student(input_ids=held, labels=held).loss)
    out = train(student, windows(), recipe(objective="kd", lr=0.0), heldout=held, teacher=teacher)
    assert all(c["val_loss"] == pytest.approx(l0, rel=1e-6) for c in out.trajectory)


def test_kd_under_lora_distils_from_the_unpruned_teacher(data_dir):
    teacher = model(seed=5)
    frozen = copy.deepcopy(teacher.state_dict())
    r = recipe(tokens=256, checkpoint_every=128, batch_tokens=128, micro_batch_tokens=128, lora=True, lr=1e-2,
               repeat=False, objective="kd")
    out_model, pt = posttrain(model(), byte_tokenizer(), r, RunEnv.make(data_dir=data_dir), teacher=teacher)
    assert not any("lora" in n for n, _ in out_model.named_parameters())
    assert all("train_kd" in c for c in pt["trajectory"])
    assert all(torch.equal(frozen[k], v) for k, v in teacher.state_dict().items())
    assert pt["recipe"]["objective"] == "kd"


# ----------------------------------------------------------------------------- the recipe


@pytest.mark.parametrize("fields,message", [
    ({"objective": "kd", "temperature": 0}, "temperature must be a number > 0"),
    ({"objective": "kd", "temperature": -1.0}, "temperature must be a number > 0"),
    ({"objective": "kd+ce", "kd_weight": 1.5}, "kd_weight (the KD term's share of the kd+ce loss) must be in [0, 1]"),
    ({"objective": "kd+ce", "kd_weight": -0.1}, "must be in [0, 1]"),
    ({"objective": "kdd"}, "unknown post-training objective 'kdd' (did you mean 'kd'?)"),
    ({"teacher": "nano-llama-l5"}, "only read by a distillation objective"),
    ({"objective": "kd", "teacher": ""}, "teacher must be a model spec"),
])
def test_bad_distillation_recipes_are_one_line(fields, message):
    with pytest.raises(UsageError) as exc:
        recipe(**fields)
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_ce_recipes_keep_their_dict_and_kd_recipes_name_their_objective():
    from reports.recipes import recipe_label

    ce = recipe()
    assert "objective" not in ce.to_dict() and "temperature" not in ce.to_dict()
    kd = recipe(objective="kd", temperature=2.0)
    assert kd.to_dict()["objective"] == "kd" and kd.to_dict()["temperature"] == 2.0
    assert recipe_label(kd.to_dict()) != recipe_label(ce.to_dict())  # fits never mix objectives
    assert "kd" in recipe_label(kd.to_dict())


def test_log_checkpoints_span_the_budget_at_no_extra_cost():
    nano = Recipe(tokens=131072, checkpoint_every=16384, batch_tokens=4096, seq_len=128, checkpoints="log",
                  checkpoint_count=8)
    assert nano.checkpoint_steps == (1, 2, 3, 4, 7, 12, 20, 32)
    assert nano.checkpoint_steps[-1] == nano.steps  # the last is the end of training
    assert nano.to_dict()["checkpoints"] == "log" and nano.to_dict()["checkpoint_count"] == 8
    linear = Recipe(tokens=131072, checkpoint_every=16384, batch_tokens=4096, seq_len=128)
    assert linear.checkpoint_steps == (4, 8, 12, 16, 20, 24, 28, 32)
    assert "checkpoints" not in linear.to_dict() and "checkpoint_count" not in linear.to_dict()
    every = Recipe(tokens=4096 * 5, checkpoint_every=4096, batch_tokens=4096, seq_len=128, checkpoints="log",
                   checkpoint_count=5)
    assert every.checkpoint_steps == (1, 2, 3, 4, 5)  # as many as steps: every step


def test_training_records_a_checkpoint_at_each_log_step():
    r = recipe(tokens=128 * 16, checkpoints="log", checkpoint_count=4)
    out = train(model(), windows(), r, heldout=windows(8, seed=9))
    assert [c["tokens"] for c in out.trajectory] == [s * 128 for s in r.checkpoint_steps] == [128, 384, 768, 2048]


@pytest.mark.parametrize("fields,message", [
    ({"checkpoints": "log", "checkpoint_count": 2}, "at least 3 checkpoints"),
    ({"checkpoints": "log"}, "needs checkpoint_count"),
    ({"checkpoints": "log", "checkpoint_count": 5}, "more checkpoints than the budget has optimizer steps (4 ="),
    ({"checkpoint_count": 4}, "add checkpoints = \"log\""),
    ({"checkpoints": "logs"}, "unknown checkpoint spacing 'logs' (did you mean 'log'?)"),
])
def test_bad_checkpoint_spacings_are_one_line(fields, message):
    with pytest.raises(UsageError) as exc:
        recipe(**fields)
    assert message in str(exc.value) and "\n" not in str(exc.value)
