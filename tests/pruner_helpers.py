"""Tiny random models and the shared invariant checks for the pruner tests."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from bench.sources.tiny import tiny_config as bench_tiny_config
from pruners.adapter import LAYER_SIZES_KEY, Adapter

VOCAB = 97
ARCHS = ("llama", "qwen2", "llama-tied")


def tiny_config(arch: str = "llama", **overrides):
    """GQA (4 query heads over 2 KV heads), 4 layers; Qwen2 mixes sliding and full attention.

    `bench.sources.tiny.tiny_config` with this file's vocabulary, special ids and context.
    """
    base = dict(vocab_size=VOCAB, max_position_embeddings=128, tie_word_embeddings=arch.endswith("-tied"),
                bos_token_id=1, eos_token_id=2, pad_token_id=0)
    if arch.startswith("qwen2"):
        base.update(use_sliding_window=True, sliding_window=8, max_window_layers=2)
    base.update(overrides)
    return bench_tiny_config(arch.removesuffix("-tied"), **base)


def tiny(arch: str = "llama", seed: int = 0, **overrides):
    """A tiny random causal LM, identical for the same (arch, seed, overrides)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(tiny_config(arch, **overrides))
        # Random norm weights, so hidden channels differ in importance.
        for name, p in model.named_parameters():
            if "norm" in name:
                p.data.uniform_(0.5, 1.5)
    return model.eval()


def ids(n: int = 4, length: int = 24, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(3, VOCAB, (n, length), generator=g)


@torch.no_grad()
def logits(model, x=None) -> torch.Tensor:
    return model(input_ids=ids() if x is None else x).logits


def hooks_left(model) -> list[str]:
    """Modules that still carry forward/backward hooks."""
    out = []
    for name, mod in model.named_modules():
        for attr in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks",
                     "_forward_hooks_with_kwargs", "_forward_pre_hooks_with_kwargs"):
            if getattr(mod, attr, None):
                out.append(f"{name}.{attr}")
    return out


def check_consistent(model) -> None:
    """Config, module attributes and tensor shapes agree, and the forward pass runs."""
    ad = Adapter(model)
    c = model.config
    assert c.num_hidden_layers == ad.num_layers
    if getattr(c, "layer_types", None) is not None:
        assert len(c.layer_types) == ad.num_layers
    assert c.hidden_size == ad.hidden_size == ad.lm_head.in_features
    assert c.head_dim == ad.head_dim
    sizes = ad.layer_sizes()
    for i, s in enumerate(sizes):
        attn = ad.attn(i)
        assert attn.layer_idx == i
        assert attn.num_key_value_groups * s["num_key_value_heads"] == s["num_attention_heads"]
        q, k, v, o = ad.qkvo(i)
        assert q.in_features == k.in_features == v.in_features == o.out_features == ad.hidden_size
        assert o.in_features == q.out_features and k.out_features == v.out_features
        g, u, d = ad.gate_up_down(i)
        assert g.out_features == u.out_features == d.in_features
        for norm in ad.layer_norms(i):
            assert norm.weight.shape == (ad.hidden_size,)
    per_layer = getattr(c, LAYER_SIZES_KEY, None)
    if per_layer:
        assert per_layer == sizes
    else:
        for key in ("num_attention_heads", "num_key_value_heads", "intermediate_size"):
            assert all(s[key] == getattr(c, key) for s in sizes), key
    if c.tie_word_embeddings:
        assert ad.tied
    out = logits(model)
    assert out.shape[-1] == c.vocab_size and torch.isfinite(out).all()


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny tensors on a shared 2-core machine: extra intra-op threads only add contention."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
