"""Model specs: tiny models, local directories, and the errors around them.

The SmolLM2 GGUF alias (a real model) is loaded in tests/integration/test_smollm2.py; killed and
concurrent builds of a cache entry (two processes) in tests/integration/test_processes.py.
"""

from __future__ import annotations

import os
import stat

import pytest
import torch

from bench.env import RunEnv
from bench.sources import models
from bench.sources.cache import resolve_cache_dir
from bench.sources.tiny import BYTE_VOCAB, byte_tokenizer, tiny_model
from bench.errors import USER_ERRORS, UsageError


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_tiny_models_are_deterministic_per_seed(arch):
    a, b, c = tiny_model(arch, seed=3), tiny_model(arch, seed=3), tiny_model(arch, seed=4)
    ids = torch.randint(0, 256, (2, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        la, lb, lc = (m(ids).logits for m in (a, b, c))
    assert torch.equal(la, lb) and not torch.equal(la, lc)
    assert a.config.model_type == arch


def test_qwen2_tiny_has_qkv_biases():
    attn = tiny_model("qwen2").model.layers[0].self_attn
    assert attn.q_proj.bias is not None and attn.o_proj.bias is None


def test_byte_tokenizer_round_trips_and_adds_one_bos():
    tok = byte_tokenizer()
    text = "Café = Robert <unk> =\n\n"
    ids = tok(text)["input_ids"]
    assert ids[0] == tok.bos_token_id and tok.bos_token_id not in ids[1:]
    assert tok.decode(ids, skip_special_tokens=True) == text
    assert len(tok) == BYTE_VOCAB


def test_not_a_gguf_is_refused(tmp_path):
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"PK\x03\x04 definitely a zip")
    with pytest.raises(UsageError, match="is not a GGUF file"):
        models.load_model(str(fake), RunEnv.make(cache_dir=tmp_path / "c"))


def test_unknown_alias_suggests_a_known_one():
    with pytest.raises(UsageError, match="unknown model 'smollm2-135' .*did you mean 'smollm2-135m'"):
        models.load_model("smollm2-135", RunEnv.make())


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_cache_dir(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(stat.S_IRUSR | stat.S_IXUSR)
    with pytest.raises(UsageError, match="not writable"):
        resolve_cache_dir(ro / "sub")


def test_cache_dir_that_is_a_file(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(UsageError, match="cache directory .* is not writable"):
        resolve_cache_dir(f)


def test_save_pretrained_directory_round_trip(tmp_path):
    model = tiny_model("qwen2", seed=5)
    model.save_pretrained(tmp_path / "m")
    loaded = models.load_model(str(tmp_path / "m"), RunEnv.make())
    ids = torch.arange(20)[None]
    with torch.no_grad():
        assert torch.equal(model(ids).logits, loaded.model(ids).logits)
    assert loaded.kind == "local"


def test_local_dirs_go_through_the_pruned_loader(tmp_path):
    """A per-layer-width block-wise model loads by path, and a tampered 2:4 model is refused."""
    from bench.registry import make_config
    from pruners.registry import prune
    from pruners.saving import save_pruned

    ids = torch.arange(24)[None]
    block = tiny_model("llama", seed=2)
    prune(block, None, make_config("blockwise", ratio=0.5, importance="l2", layers=(1, 3)))
    save_pruned(block, tmp_path / "block")
    loaded = models.load_model(str(tmp_path / "block"), RunEnv.make())
    with torch.no_grad():
        assert torch.equal(block(ids).logits, loaded.model(ids).logits)

    sparse = tiny_model("qwen2", seed=2)
    prune(sparse, None, make_config("nm", n=2, m=4, nm_method="magnitude"))
    save_pruned(sparse, tmp_path / "nm")
    assert models.load_model(str(tmp_path / "nm"), RunEnv.make()).kind == "local"
    from safetensors.torch import load_file, save_file

    weights = load_file(tmp_path / "nm" / "model.safetensors")
    weights["model.layers.0.mlp.up_proj.weight"] = torch.ones_like(weights["model.layers.0.mlp.up_proj.weight"])
    save_file(weights, tmp_path / "nm" / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(USER_ERRORS, match="break the saved 2:4 pattern"):
        models.load_model(str(tmp_path / "nm"), RunEnv.make())
