"""Tiny random models for tests: the byte-level tokenizer, the tiny config and model.

Every test that needs a small Llama or Qwen2 builds it here, so there is one tiny config
(GQA with 2 KV groups); a test overrides the fields it cares about.
"""

from __future__ import annotations

import torch

from bench.errors import UsageError, did_you_mean


def byte_tokenizer():
    """A byte-level tokenizer with no merges: 256 byte symbols plus BOS/EOS/PAD.

    Tiny random test models need *some* tokenizer to run the real perplexity protocol on
    real text; this one is deterministic, needs no download and no training, and adds one
    BOS at the start of each encoded text like Llama's tokenizer does.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    specials = ["<bos>", "<eos>", "<pad>"]
    for tok in specials:
        vocab[tok] = len(vocab)
    tk = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tk.decoder = decoders.ByteLevel()
    bos = vocab["<bos>"]
    tk.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A <bos> $B", special_tokens=[("<bos>", bos)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tk, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>")


BYTE_VOCAB = 259  # 256 bytes + <bos>, <eos>, <pad>


# --------------------------------------------------------------------------- tiny models


def tiny_config(arch: str = "llama", **overrides):
    """A tiny config (GQA, 2 KV groups) for tests; every field can be overridden."""
    from transformers import LlamaConfig, Qwen2Config

    base = dict(vocab_size=BYTE_VOCAB, hidden_size=64, intermediate_size=128,
                num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
                head_dim=16, max_position_embeddings=512, tie_word_embeddings=False,
                bos_token_id=256, eos_token_id=257, pad_token_id=258)
    base.update(overrides)
    if arch == "llama":
        return LlamaConfig(**base)
    if arch == "qwen2":
        return Qwen2Config(**base)
    raise UsageError(f"unknown tiny architecture {arch!r}{did_you_mean(arch, ['llama', 'qwen2'])}; use llama or qwen2")


def tiny_model(arch: str = "llama", seed: int = 0, **overrides):
    """A tiny randomly initialised causal LM, identical for the same seed and config."""
    from transformers import AutoModelForCausalLM

    config = tiny_config(arch, **overrides)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config)
    return model.eval()
