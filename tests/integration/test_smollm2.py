"""The SmolLM2-135M alias: the real model, converted once from its GGUF file and cached.

Slow (the 135M-parameter conversion): `smollm2` marks each test that uses it `slow`.
"""

from __future__ import annotations

import os

import pytest
import torch

from bench.env import RunEnv
from bench.sources import models
from pruners.report import count_params


@pytest.fixture(scope="session")
def smollm2(tmp_path_factory):
    pytest.importorskip("gguf")
    cache = tmp_path_factory.mktemp("cache")
    first = models.load_model("smollm2-135m", RunEnv.make(cache_dir=cache))
    return first, cache


def test_smollm2_alias_loads_from_gguf(smollm2):
    loaded, cache = smollm2
    cfg = loaded.model.config
    assert (cfg.model_type, cfg.num_hidden_layers, cfg.hidden_size) == ("llama", 30, 576)
    assert (cfg.num_attention_heads, cfg.num_key_value_heads, cfg.intermediate_size) == (9, 3, 1536)
    assert count_params(loaded.model) == 134_515_008  # tied embeddings counted once
    assert loaded.kind == "alias" and loaded.info["dtype"] == "float32"
    assert loaded.tokenizer.decode(loaded.tokenizer("The cat sat.")["input_ids"]) == "The cat sat."
    converted = loaded.info["converted"]
    assert converted.startswith(str(cache)) and os.path.isfile(os.path.join(converted, "model.safetensors"))


def test_smollm2_cached_copy_is_reused_and_identical(smollm2):
    loaded, cache = smollm2
    again = models.load_model("smollm2-135m", RunEnv.make(cache_dir=cache))
    assert again.info["converted"] == loaded.info["converted"]
    ids = loaded.tokenizer("Pruning large language models", return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.equal(loaded.model(ids).logits, again.model(ids).logits)
