"""Model classes for pruned checkpoints whose decoder layers differ in width.

This file is self-contained on purpose (it imports only torch and transformers):
`pruners.saving.save_pruned` copies it next to the weights as ``modeling_prunebench.py``
and points the config's ``auto_map`` at it, so such a checkpoint loads with plain
transformers::

    AutoModelForCausalLM.from_pretrained(path, trust_remote_code=True)

and, without trusting remote code, with ``pruners.saving.load_pruned(path)``, which uses the
same classes from this module. The widths live in the config as ``prunebench_layer_sizes``:
one ``{"num_attention_heads", "num_key_value_heads", "intermediate_size"}`` per layer, while
the stock fields keep the unpruned (template) widths. Loaded without either route, such a
checkpoint fails loudly with size mismatches instead of loading wrong weights.
"""

from __future__ import annotations

from torch import nn
from transformers import LlamaForCausalLM, Qwen2ForCausalLM

LAYER_SIZES_KEY = "prunebench_layer_sizes"


def apply_layer_sizes(model: nn.Module, sizes: list) -> None:
    """Give a freshly built model's layers the widths in `sizes`.

    Projections are replaced by new Linears of the right shapes; their values are whatever
    loading puts there next.
    """
    config = model.config
    layers = model.model.layers
    if len(sizes) != len(layers):
        raise ValueError(f"{LAYER_SIZES_KEY} lists {len(sizes)} layers but the model has {len(layers)}")
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    hidden = config.hidden_size
    for layer, size in zip(layers, sizes):
        n_h = int(size["num_attention_heads"])
        n_kv = int(size["num_key_value_heads"])
        inter = int(size["intermediate_size"])
        attn, mlp = layer.self_attn, layer.mlp
        shapes = {"q_proj": (hidden, n_h * head_dim), "k_proj": (hidden, n_kv * head_dim),
                  "v_proj": (hidden, n_kv * head_dim), "o_proj": (n_h * head_dim, hidden)}
        for name, (n_in, n_out) in shapes.items():
            setattr(attn, name, _resized(getattr(attn, name), n_in, n_out))
        attn.num_key_value_groups = n_h // n_kv
        shapes = {"gate_proj": (hidden, inter), "up_proj": (hidden, inter), "down_proj": (inter, hidden)}
        for name, (n_in, n_out) in shapes.items():
            setattr(mlp, name, _resized(getattr(mlp, name), n_in, n_out))
        if hasattr(mlp, "intermediate_size"):
            mlp.intermediate_size = inter


def _resized(lin: nn.Linear, n_in: int, n_out: int) -> nn.Linear:
    if (lin.in_features, lin.out_features) == (n_in, n_out):
        return lin
    w = lin.weight
    return nn.Linear(n_in, n_out, bias=lin.bias is not None, device=w.device, dtype=w.dtype)


def layer_sizes(config) -> list[dict]:
    """Per-layer widths from the config, or the uniform template widths when it has none."""
    return getattr(config, LAYER_SIZES_KEY, None) or [{
        "num_attention_heads": config.num_attention_heads,
        "num_key_value_heads": config.num_key_value_heads,
        "intermediate_size": config.intermediate_size}] * config.num_hidden_layers


class PrunebenchLlamaForCausalLM(LlamaForCausalLM):
    """LlamaForCausalLM with per-layer widths from ``config.prunebench_layer_sizes``."""

    def __init__(self, config):
        super().__init__(config)
        apply_layer_sizes(self, layer_sizes(config))


class PrunebenchQwen2ForCausalLM(Qwen2ForCausalLM):
    """Qwen2ForCausalLM with per-layer widths from ``config.prunebench_layer_sizes``."""

    def __init__(self, config):
        super().__init__(config)
        apply_layer_sizes(self, layer_sizes(config))


CLASSES = {"llama": PrunebenchLlamaForCausalLM, "qwen2": PrunebenchQwen2ForCausalLM}
