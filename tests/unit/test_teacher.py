"""The distillation teacher in a run (issue 21): who teaches which case, and the checks made
before any case runs (the teacher resolves, speaks the student's vocabulary, and fits)."""

from __future__ import annotations

import pytest
import torch

from bench.env import RunEnv
from bench.errors import UsageError
from bench.harness import memory
from bench.harness.preflight import check_cases
from bench.harness.runner import CaseRunner
from bench.registry import make_config
from bench.studies.cases import Case
from bench.studies import params
from bench.training.recipe import Recipe

KD = dict(tokens=256, checkpoint_every=128, batch_tokens=128, micro_batch_tokens=128, seq_len=32, objective="kd")


def case(method: str = "depth", model: str = "tiny-llama", **recipe) -> Case:
    pruned = method != "control"
    return Case("t", model, "a", method, ratio=0.5 if pruned else None,
                prune=make_config("depth", ratio=0.5, variant="oneshot") if pruned else None,
                recipe=Recipe(**(KD | recipe)))


@pytest.fixture
def env(tmp_path, data_dir):
    return RunEnv.make(data_dir=data_dir, cache_dir=tmp_path / "cache")


def test_a_pruned_case_learns_from_its_unpruned_model_and_a_control_runs_ce(env):
    runner = CaseRunner(env)
    recipe, teacher, note = runner.objective(case())
    assert recipe.objective == "kd" and note is None
    assert teacher is runner.dense("tiny-llama").model  # the model the session holds for L0: no second copy
    recipe, teacher, note = runner.objective(case("control"))
    assert recipe.objective == "ce" and teacher is None and recipe.tokens == KD["tokens"]
    assert "an unpruned model has no teacher to learn from" in note and "instead of kd" in note


def test_a_named_teacher_is_loaded_once_for_every_case(env):
    runner = CaseRunner(env)
    _, first, _ = runner.objective(case(teacher="tiny-llama"))
    _, again, _ = runner.objective(case(model="tiny-llama", teacher="tiny-llama"))
    assert first is again and first is not runner.dense("tiny-llama").model


def test_a_teacher_of_another_vocabulary_is_refused_before_any_case(env):
    with pytest.raises(UsageError) as exc:
        check_cases([case(teacher="nano-smoke-s2")], env)
    msg = str(exc.value)
    assert "\n" not in msg and "teacher nano-smoke-s2 has a vocabulary of 512 tokens" in msg
    assert "the student tiny-llama" in msg and "student's tokenizer" in msg


def test_a_teacher_that_does_not_resolve_is_refused_before_any_case(env):
    with pytest.raises(UsageError) as exc:
        check_cases([case(teacher="nano-lama-l5")], env)
    assert "nano-lama-l5" in str(exc.value) and "\n" not in str(exc.value)


def _counted(hub_id: str) -> params.Counted:
    import json
    from pathlib import Path

    from transformers import AutoConfig

    path = Path(__file__).resolve().parents[1] / "configs" / f"{hub_id.replace('/', '--')}.json"
    model = params.meta_model(AutoConfig.for_model(**json.loads(path.read_text())))
    n = sum(p.numel() for p in model.parameters())
    return params.Counted(n, n, "test", tensors=n, lora_io=params.lora_features(model))


def test_the_memory_estimate_counts_a_named_teacher_and_refuses_one_that_does_not_fit():
    small, big = _counted("meta-llama/Llama-3.2-1B"), _counted("meta-llama/Llama-3.1-8B")
    def student(**recipe) -> Case:
        return Case("t", "meta-llama/Llama-3.2-1B", "1b", "depth", ratio=0.25,
                    prune=make_config("depth", ratio=0.25), recipe=Recipe(lr=2e-5, **recipe))

    own = memory.case_need(student(objective="kd"), small, torch.bfloat16)  # its unpruned model: held anyway
    named = memory.case_need(student(objective="kd"), small, torch.bfloat16, teacher_params=big.before)
    assert own.total("cuda") == memory.case_need(student(), small, torch.bfloat16).total("cuda")
    assert named.total("cuda") - own.total("cuda") == 2 * big.before  # the 8B teacher's bf16 weights
    assert "distillation teacher 15.0 GiB" in named.parts()
    cap = memory.Capacity(32 * memory.GiB, "cuda:0 has 32.0 GiB free")
    assert own.total("cuda") < cap.nbytes < named.total("cuda")
    line = memory.refusal(named, cap, "cuda")
    assert "\n" not in line and "distillation teacher" in line and "32.0 GiB free" in line


def test_the_report_says_when_a_control_ran_ce_under_a_kd_recipe():
    from reports.record_tables import posttrain_table
    from synthetic_records import control_record, edited

    note = "control: an unpruned model has no teacher to learn from, so it ran the recipe with objective ce instead of kd"
    rec = edited(control_record("s1", 2e5), lambda d: d["posttrain"].update(objective_note=note))
    assert rec.posttrain.objective_note == note and rec.to_json()["posttrain"]["objective_note"] == note
    table = posttrain_table([rec])
    assert "- synth-s1-control: an unpruned model has no teacher to learn from" in table
