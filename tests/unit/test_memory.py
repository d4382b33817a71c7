"""The memory estimate: exact bytes from public configs, and the refusal before any case runs.

The 8B model is reachable offline through a models directory holding only its public
config.json (tests/configs): the estimate needs the shapes, never the weights.
"""

from __future__ import annotations

from bench.registry import make_config
from bench.training.recipe import Recipe

import json
import shutil
from pathlib import Path

import pytest
import torch

from bench.harness import memory
from bench.studies.cases import Case
from bench.errors import UsageError
from bench.studies import params
from plugin_helpers import collection_finish, configured, session_finish, session_of

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
N_8B = 8_030_261_248  # Llama-3.1-8B's published parameter count


def counted(hub_id: str) -> params.Counted:
    from transformers import AutoConfig

    config = AutoConfig.for_model(**json.loads((CONFIGS / f"{hub_id.replace('/', '--')}.json").read_text()))
    model = params.meta_model(config)
    n = sum(p.numel() for p in model.parameters())
    return params.Counted(n, n, "test", tensors=n, lora_io=params.lora_features(model))


# Counted once, at import: every test of the module reads them.
COUNTED = {hub_id: counted(hub_id) for hub_id in ("meta-llama/Llama-3.1-8B", "meta-llama/Llama-3.2-1B")}


def control(posttrain: dict | None) -> Case:
    return Case("t", "meta-llama/Llama-3.1-8B", "llama-3.1-8b", "control",
                recipe=Recipe.from_options(posttrain) if posttrain is not None else None)


def test_the_estimate_counts_weights_gradients_and_adamw_exactly():
    c = COUNTED["meta-llama/Llama-3.1-8B"]
    assert c.before == N_8B
    full = memory.case_need(control({"lr": 2e-5}), c, torch.bfloat16)
    assert (full.mode, full.base, full.training) == ("full", 2 * N_8B, 16 * N_8B)
    assert full.total("cuda") == 18 * N_8B
    assert memory.gib(full.total("cuda")) == "134.6 GiB"
    lora = memory.case_need(control({"lora": True}), c, torch.bfloat16)
    # Llama-3.1-8B: 32 layers x (q 4096+4096, k 4096+1024, v 4096+1024, o 4096+4096,
    # gate/up 4096+14336 each, down 14336+4096) in + out features, rank 8 by default.
    per_layer = 8192 + 5120 + 5120 + 8192 + 3 * 18432
    assert c.lora_io == 32 * per_layer
    assert lora.training == 4 * N_8B + 8 * 32 * per_layer * 16
    assert memory.case_need(control(None), c, torch.bfloat16).total("cuda") == 2 * N_8B  # evaluation only
    # FSDP shards the training state over the processes; on the CPU every process shares the memory.
    fsdp = memory.case_need(control({"processes": 4, "engine": "fsdp", "micro_batch_tokens": 1024}), c,
                            torch.bfloat16)
    assert fsdp.total("cuda") == 2 * N_8B + 4 * N_8B and fsdp.total("cpu") == 18 * N_8B


def test_a_pruned_case_holds_a_pruned_copy():
    c = params.count_cases([Case("t", "tiny-llama", "tl", "depth", ratio=0.5,
                                 prune=make_config("depth", ratio=0.5, variant="oneshot"))])
    k = next(iter(c.values()))
    assert k.tensors == k.after < k.before
    need = memory.case_need(Case("t", "tiny-llama", "tl", "depth", ratio=0.5), k, torch.float32)
    assert (need.base, need.pruned) == (4 * k.before, 4 * k.after)


def test_check_refuses_in_one_line_naming_case_estimate_capacity_and_options():
    need = memory.case_need(control({"lr": 2e-5}), COUNTED["meta-llama/Llama-3.1-8B"], torch.float32)
    cap = memory.Capacity(24 * memory.GiB, "the CPU has 24.0 GiB available (MemAvailable)")
    line = memory.refusal(need, cap, "cpu")
    assert "\n" not in line and line.startswith("case t-llama-3.1-8b-control: needs about 149.6 GiB")
    for part in ("24.0 GiB available", "LoRA", "FSDP", "processes = N", "evaluation only", "smaller model"):
        assert part in line


STUDY = """
[study]
name = "big"

[[models]]
spec = "{spec}"
key = "{key}"
family = "llama-3"

[[methods]]
method = "control"

[evaluation]
datasets = ["ptb"]
seq_lens = [64]
max_windows = 1
{posttrain}
"""


def models_dir_with_config(root: Path, hub_id: str) -> Path:
    """A models directory entry holding only the public config.json (no weights)."""
    entry = root / hub_id
    entry.mkdir(parents=True)
    shutil.copyfile(CONFIGS / f"{hub_id.replace('/', '--')}.json", entry / "config.json")
    return root


def preflight(tmp_path, spec: str, key: str, posttrain: str, collectonly: bool = False):
    """`pytest bench --study big.toml --models-dir ... --device=cpu` up to its preflight checks.

    Returns the case ids; raises pytest.UsageError where the run stops before any case.
    """
    study = tmp_path / "big.toml"
    study.write_text(STUDY.format(spec=spec, key=key, posttrain=posttrain))
    with configured(f"--study={study}", f"--results-dir={tmp_path / 'results'}", "--device=cpu",
                    f"--models-dir={tmp_path / 'models'}", collectonly=collectonly) as config:
        cases = session_of(config).cases()
        try:
            collection_finish(config, cases)
        finally:
            session_finish(config)
        return [c.id for c in cases]


def test_full_post_training_of_an_8b_model_is_refused_before_any_case(tmp_path):
    """In process; under xdist the controller runs the same preflight (as for the lock,
    tests/e2e/test_harness_trust.py)."""
    need = memory.case_need(control({"lr": 2e-5}), COUNTED["meta-llama/Llama-3.1-8B"], torch.float32)
    if memory.host_available() >= need.total("cpu"):
        pytest.skip(f"this machine has {memory.gib(memory.host_available())}: an 8B model post-trains here")
    models_dir_with_config(tmp_path / "models", "meta-llama/Llama-3.1-8B")
    with pytest.raises(pytest.UsageError) as info:
        preflight(tmp_path, "meta-llama/Llama-3.1-8B", "llama-3.1-8b",
                  "[posttrain]\ntokens = 4096\nbatch_tokens = 4096\ncheckpoint_every = 4096")
    err = [line for line in str(info.value).splitlines() if "needs about" in line]
    assert len(err) == 1 and "case big-llama-3.1-8b-control: needs about 149.6 GiB" in err[0], str(info.value)
    assert "LoRA" in err[0] and "FSDP" in err[0]
    assert not (tmp_path / "results").exists()  # nothing written


def test_the_same_study_evaluating_only_or_with_lora_is_not_refused(tmp_path):
    c = COUNTED["meta-llama/Llama-3.2-1B"]
    lora = memory.case_need(Case("t", "m", "k", "control", recipe=Recipe(lora=True)), c, torch.float32)
    if memory.host_available() < lora.total("cpu"):
        pytest.skip(f"this machine has only {memory.gib(memory.host_available())} available")
    models_dir_with_config(tmp_path / "models", "meta-llama/Llama-3.2-1B")
    for posttrain in ("", "[posttrain]\nlora = true\ntokens = 4096\nbatch_tokens = 4096\ncheckpoint_every = 4096"):
        ids = preflight(tmp_path, "meta-llama/Llama-3.2-1B", "llama-3.2-1b", posttrain, collectonly=True)
        assert ids == ["big-llama-3.2-1b-control"]


def test_check_passes_what_fits():
    need = memory.Need("c", "eval", torch.float32, base=10)
    memory.check(need, torch.device("cpu"))  # 10 bytes fit any machine
    with pytest.raises(UsageError, match="case c: needs about"):
        memory.check(memory.Need("c", "full", torch.float32, base=1 << 62, training=1), torch.device("cpu"))


def test_the_command_prints_the_estimate_of_each_mode(capsys):
    assert memory.main([str(CONFIGS / "meta-llama--Llama-3.1-8B.json"), "--device", "cuda"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("evaluation only: 15.0 GiB")
    assert out[1].startswith("full post-training: 134.6 GiB (weights 15.0 GiB bfloat16 + full post-training 119.7 GiB")
    assert out[2].startswith("LoRA post-training: 45.2 GiB")
