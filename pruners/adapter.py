"""All architecture access for the pruners: one place that knows where things live.

Every surgery reaches decoder layers, attention and MLP projections, norms, embeddings and
the LM head through `Adapter`, and changes shapes only through its `remove_layers`,
`prune_attention`, `prune_mlp` and `prune_hidden` methods. Each of those leaves the model
consistent: module attributes (`num_key_value_groups`, `layer_idx`, ...) and the config
(`num_hidden_layers`, `layer_types`, `intermediate_size`, `num_attention_heads`,
`num_key_value_heads`, `hidden_size`, explicit `head_dim`) are updated together, so
`save_pretrained` then `from_pretrained` gives the same logits.

Supported: Llama (`LlamaForCausalLM`) and Qwen2 (`Qwen2ForCausalLM`, with q/k/v biases and
per-layer `layer_types`). Anything else raises a `PrunerError` naming what is supported.

Layers whose widths differ from one another (block-wise pruning of a layer range) cannot be
described by a stock config; the per-layer sizes are then recorded in
``config.prunebench_layer_sizes`` (see `pruners.saving`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from pruners.errors import PrunerError

LAYER_SIZES_KEY = "prunebench_layer_sizes"


@dataclass(frozen=True)
class ArchSpec:
    """What differs between the supported architectures."""

    model_type: str
    # Llama's config validator (transformers >= 5) requires hidden_size % num_attention_heads
    # == 0 even with an explicit head_dim; Qwen2's does not.
    hidden_divisible_by_heads: bool


ARCHS = {
    "llama": ArchSpec("llama", hidden_divisible_by_heads=True),
    "qwen2": ArchSpec("qwen2", hidden_divisible_by_heads=False),
}


def supported_architectures() -> list[str]:
    return sorted(ARCHS)


class Adapter:
    """Uniform access to a Llama-family causal LM (``model.model.layers[i].self_attn`` ...)."""

    def __init__(self, model: nn.Module):
        config = getattr(model, "config", None)
        model_type = getattr(config, "model_type", None)
        if model_type not in ARCHS or not hasattr(getattr(model, "model", None), "layers"):
            raise PrunerError(
                f"unsupported architecture {model_type or type(model).__name__!r}: the pruners "
                f"support {', '.join(supported_architectures())} causal LMs; convert the model or "
                f"add it to pruners/adapter.py")
        self.model = model
        self.config = config
        self.spec = ARCHS[model_type]
        self.base = model.model
        # head_dim never changes under pruning; keep it explicit so configs stay loadable
        # after num_attention_heads or hidden_size change.
        self.head_dim = int(getattr(config, "head_dim", None)
                            or config.hidden_size // config.num_attention_heads)
        # The stock fields as they are now describe a valid config (the original widths, or
        # uniform pruned ones); they stay the template when layers come to differ.
        self._template = {key: int(getattr(config, key))
                          for key in ("num_attention_heads", "num_key_value_heads", "intermediate_size")}

    # ------------------------------------------------------------------ access

    @property
    def layers(self) -> nn.ModuleList:
        return self.base.layers

    @property
    def num_layers(self) -> int:
        return len(self.base.layers)

    def attn(self, i: int) -> nn.Module:
        return self.base.layers[i].self_attn

    def mlp(self, i: int) -> nn.Module:
        return self.base.layers[i].mlp

    def qkvo(self, i: int) -> tuple[nn.Linear, nn.Linear, nn.Linear, nn.Linear]:
        a = self.attn(i)
        return a.q_proj, a.k_proj, a.v_proj, a.o_proj

    def gate_up_down(self, i: int) -> tuple[nn.Linear, nn.Linear, nn.Linear]:
        m = self.mlp(i)
        return m.gate_proj, m.up_proj, m.down_proj

    def layer_linears(self, i: int) -> dict[str, nn.Linear]:
        """The Linears of decoder layer i, by their name inside the layer."""
        q, k, v, o = self.qkvo(i)
        g, u, d = self.gate_up_down(i)
        return {"self_attn.q_proj": q, "self_attn.k_proj": k, "self_attn.v_proj": v,
                "self_attn.o_proj": o, "mlp.gate_proj": g, "mlp.up_proj": u, "mlp.down_proj": d}

    def layer_prefix(self, i: int) -> str:
        """Parameter-name prefix of layer i (``model.layers.{i}.``)."""
        return f"model.layers.{i}."

    def layer_norms(self, i: int) -> tuple[nn.Module, nn.Module]:
        layer = self.base.layers[i]
        return layer.input_layernorm, layer.post_attention_layernorm

    def norms(self) -> list[nn.Module]:
        """Every norm whose output carries the hidden dimension, the final norm last."""
        out = []
        for i in range(self.num_layers):
            out.extend(self.layer_norms(i))
        out.append(self.base.norm)
        return out

    @property
    def embed(self) -> nn.Embedding:
        return self.base.embed_tokens

    @property
    def lm_head(self) -> nn.Linear:
        return self.model.lm_head

    @property
    def tied(self) -> bool:
        return self.lm_head.weight is self.embed.weight

    @property
    def hidden_size(self) -> int:
        return self.embed.weight.shape[1]

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def is_meta(self) -> bool:
        return self.device.type == "meta"

    def n_heads(self, i: int) -> int:
        return self.attn(i).q_proj.out_features // self.head_dim

    def n_kv_heads(self, i: int) -> int:
        return self.attn(i).k_proj.out_features // self.head_dim

    def intermediate(self, i: int) -> int:
        return self.mlp(i).gate_proj.out_features

    def layer_sizes(self) -> list[dict]:
        """Per-layer widths read from the modules (the truth, whatever the config says)."""
        return [{"num_attention_heads": self.n_heads(i), "num_key_value_heads": self.n_kv_heads(i),
                 "intermediate_size": self.intermediate(i)} for i in range(self.num_layers)]

    def layer_params(self, i: int) -> int:
        return sum(p.numel() for p in self.base.layers[i].parameters())

    def params_per_hidden_channel(self) -> int:
        """How many parameters one hidden channel carries (what `prune_hidden` removes per channel)."""
        total = self.embed.weight.shape[0]  # embedding column
        if not self.tied:
            total += self.lm_head.weight.shape[0]
        total += len(self.norms())
        for i in range(self.num_layers):
            q, k, v, o = self.qkvo(i)
            g, u, d = self.gate_up_down(i)
            total += q.out_features + k.out_features + v.out_features + g.out_features + u.out_features
            for lin in (o, d):  # output rows (and their bias entries)
                total += lin.in_features + (1 if lin.bias is not None else 0)
        return total

    def hidden_multiple(self) -> int:
        """Hidden widths must be a multiple of this for the config to stay loadable."""
        return int(self.config.num_attention_heads) if self.spec.hidden_divisible_by_heads else 1

    # ------------------------------------------------------------------ running layer by layer

    @torch.no_grad()
    def layer_inputs(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, list[dict]]:
        """Embed `input_ids` and build each layer's call arguments, without running any layer.

        Returns the hidden states entering layer 0, (b, L, H), and for every layer the keyword
        arguments the decoder would pass it (attention mask of its layer type, rotary
        position embeddings, ...), so layers can be run one at a time by `run_layer`.
        """
        calls: list[dict | None] = [None] * self.num_layers
        first: list[torch.Tensor] = []

        class _Recorder(nn.Module):
            def __init__(self, idx: int):
                super().__init__()
                self.idx = idx

            def forward(self, hidden_states, *args, **kwargs):
                if self.idx == 0:
                    first.append(hidden_states)
                if args:
                    raise RuntimeError("decoder layers are expected to get keyword arguments only")
                calls[self.idx] = kwargs
                return hidden_states

        real = self.base.layers
        self.base.layers = nn.ModuleList([_Recorder(i) for i in range(len(real))])
        try:
            self.base(input_ids=input_ids, use_cache=False)
        finally:
            self.base.layers = real
        return first[0], calls

    def run_layer(self, i: int, hidden: torch.Tensor, kwargs: dict) -> torch.Tensor:
        out = self.base.layers[i](hidden, **kwargs)
        return out[0] if isinstance(out, tuple) else out

    # ------------------------------------------------------------------ surgery

    def remove_layers(self, indices) -> None:
        """Delete decoder layers (by current index) and renumber the survivors."""
        drop = set(int(i) for i in indices)
        keep = [i for i in range(self.num_layers) if i not in drop]
        if not keep:
            raise PrunerError("this would remove every decoder layer; use a smaller ratio")
        layer_types = getattr(self.config, "layer_types", None)
        self.base.layers = nn.ModuleList([self.base.layers[i] for i in keep])
        if layer_types is not None:
            self.config.layer_types = [layer_types[i] for i in keep]
        self.sync_config()

    def prune_attention(self, i: int, keep_kv: torch.Tensor, keep_q: torch.Tensor) -> None:
        """Keep KV heads `keep_kv` and query heads `keep_q` of layer i.

        Query heads must stay blocked by KV group: every kept KV group keeps the same number
        of its own query heads (head h belongs to group h // (n_heads // n_kv_heads)).
        """
        hd = self.head_dim
        n_heads, n_kv = self.n_heads(i), self.n_kv_heads(i)
        group = n_heads // n_kv
        keep_kv = torch.as_tensor(keep_kv, dtype=torch.long).sort().values
        keep_q = torch.as_tensor(keep_q, dtype=torch.long).sort().values
        owners = keep_q // group
        per_group = torch.bincount(owners, minlength=n_kv)[keep_kv]
        if len(keep_kv) == 0 or (per_group == 0).any() or not bool((per_group == per_group[0]).all()) \
                or not bool(torch.isin(owners, keep_kv).all()):
            raise ValueError(f"layer {i}: query heads {keep_q.tolist()} are not an equal share of "
                             f"every kept KV group {keep_kv.tolist()}")
        q, k, v, o = self.qkvo(i)
        # head index -> its head_dim rows: (n,) -> (n * hd,)
        rows_q = (keep_q[:, None] * hd + torch.arange(hd)).reshape(-1)
        rows_kv = (keep_kv[:, None] * hd + torch.arange(hd)).reshape(-1)
        _slice_linear(q, rows_q, dim=0)
        _slice_linear(k, rows_kv, dim=0)
        _slice_linear(v, rows_kv, dim=0)
        _slice_linear(o, rows_q, dim=1)
        attn = self.attn(i)
        attn.num_key_value_groups = len(keep_q) // len(keep_kv)
        for name, val in (("num_heads", len(keep_q)), ("num_key_value_heads", len(keep_kv))):
            if hasattr(attn, name):
                setattr(attn, name, val)
        self.sync_config()

    def prune_mlp(self, i: int, keep: torch.Tensor) -> None:
        """Keep intermediate channels `keep` of layer i's MLP."""
        keep = torch.as_tensor(keep, dtype=torch.long).sort().values
        if len(keep) == 0:
            raise PrunerError(f"this would remove every MLP channel of layer {i}; use a smaller ratio")
        g, u, d = self.gate_up_down(i)
        _slice_linear(g, keep, dim=0)
        _slice_linear(u, keep, dim=0)
        _slice_linear(d, keep, dim=1)
        mlp = self.mlp(i)
        if hasattr(mlp, "intermediate_size"):
            mlp.intermediate_size = len(keep)
        self.sync_config()

    def prune_hidden(self, keep: torch.Tensor) -> None:
        """Keep hidden (embedding) channels `keep` in every tensor that carries them."""
        keep = torch.as_tensor(keep, dtype=torch.long).sort().values
        if len(keep) == 0:
            raise PrunerError("this would remove every hidden channel; use a smaller ratio")
        tied = self.tied
        emb = self.embed
        emb.weight = _sliced_param(emb.weight, keep, dim=1)
        emb.embedding_dim = len(keep)
        for norm in self.norms():
            norm.weight = _sliced_param(norm.weight, keep, dim=0)
        for i in range(self.num_layers):
            q, k, v, o = self.qkvo(i)
            g, u, d = self.gate_up_down(i)
            for lin in (q, k, v, g, u):
                _slice_linear(lin, keep, dim=1)
            for lin in (o, d):
                _slice_linear(lin, keep, dim=0)
            layer = self.base.layers[i]
            for mod in (layer, layer.mlp):
                if hasattr(mod, "hidden_size"):
                    mod.hidden_size = len(keep)
        if tied:
            self.lm_head.weight = emb.weight
            self.lm_head.in_features = len(keep)
        else:
            _slice_linear(self.lm_head, keep, dim=1)
        self.sync_config()

    # ------------------------------------------------------------------ consistency

    def sync_config(self) -> None:
        """Write the modules' true shapes into the config (and fix `layer_idx`).

        Uniform widths go into the standard fields. When layers differ (or the uniform head
        count would break the config's own validation), the standard fields keep the
        largest widths and ``prunebench_layer_sizes`` lists every layer's sizes.
        """
        c = self.config
        for idx, layer in enumerate(self.base.layers):
            layer.self_attn.layer_idx = idx
        c.num_hidden_layers = self.num_layers
        c.hidden_size = self.hidden_size
        c.head_dim = self.head_dim
        sizes = self.layer_sizes()
        uniform = all(s == sizes[0] for s in sizes)
        valid_heads = not self.spec.hidden_divisible_by_heads or \
            self.hidden_size % sizes[0]["num_attention_heads"] == 0
        if uniform and valid_heads:
            for key, val in sizes[0].items():
                setattr(c, key, val)
            if hasattr(c, LAYER_SIZES_KEY):
                delattr(c, LAYER_SIZES_KEY)
        else:
            # The stock fields must still describe *a* valid model: keep the template (the
            # widths before this surgery), which is at least as wide as every layer.
            for key, val in self._template.items():
                setattr(c, key, val)
            if self.spec.hidden_divisible_by_heads and self.hidden_size % c.num_attention_heads:
                raise PrunerError(
                    f"hidden size {self.hidden_size} is not a multiple of {c.num_attention_heads} heads, "
                    f"which {self.spec.model_type} configs require; prune fewer hidden channels")
            setattr(c, LAYER_SIZES_KEY, sizes)


def _sliced_param(param: nn.Parameter, keep: torch.Tensor, dim: int) -> nn.Parameter:
    keep = keep.to(param.device)
    data = param.data.index_select(dim, keep).contiguous()
    return nn.Parameter(data, requires_grad=param.requires_grad)


def _slice_linear(lin: nn.Linear, keep: torch.Tensor, dim: int) -> None:
    """Keep rows (dim=0, outputs, with the bias) or columns (dim=1, inputs) of a Linear."""
    lin.weight = _sliced_param(lin.weight, keep, dim)
    if dim == 0:
        if lin.bias is not None:
            lin.bias = _sliced_param(lin.bias, keep, 0)
        lin.out_features = len(keep)
    else:
        lin.in_features = len(keep)
