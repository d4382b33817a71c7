"""Block-wise structured pruning, LLM-Pruner style, with correct GQA handling.

Roots are `k_proj` (attention) and `gate_proj` (MLP) of the layers in [start, end), end
exclusive; attention and MLP may get separate ranges. For every root layer with C channels,
``n_pruned = C - int(C * (1 - ratio))`` (LLM-Pruner's per-layer rule), and:

* attention, ``granularity="kv-group"`` (default): ``floor(n_pruned / head_dim)`` whole KV
  groups go, each with its k/v rows, the rows of the query heads that share it, and those
  heads' o_proj columns;
* attention, ``granularity="query-head"``: C counts query channels; the heads to remove are
  rounded down to a multiple of the KV-head count and taken equally from every KV group, so
  all groups keep the same size and no KV head is removed;
* MLP: n_pruned intermediate channels go (gate/up rows, down_proj columns).

Importance of a channel is summed over every coupled row/column (no root): ``random``,
``l1``/``l2`` (sum of |W|^p), or ``taylor`` with S = W * dL/dW on calibration data (default
10 x 64 tokens, one backward): ``vectorize`` |sum S|, ``param_first`` sum |S|,
``param_second`` sum |W * acc * W| and ``param_mix`` sum |W g - W * acc * W / 2|, where acc
accumulates squared per-sample gradients. A head's score is the sum over its channels.
Only the pruned layers' projection weights get gradients; everything else is frozen for the
backward and restored afterwards, and no `.grad` is left behind.

GQA scoring. A KV group g owns query heads g*G ... g*G+G-1 (G = heads per group), and that is
what removal deletes, so by default ("blocked") a group's score sums exactly those heads.
LLM-Pruner instead folds query rows onto KV channels by position modulo the KV width, i.e.
sums heads {g, g + n_kv, g + 2 n_kv, ...} while still deleting the blocked ones;
``faithful=True`` reproduces that for comparisons with its published numbers.

Small ratios. When a layer's n_pruned is below one head (ratio < about 1/n_kv_heads for KV
groups), the reference crashes. Here the rule is explicit (`attention`):
``auto`` (default) prunes no attention in that layer and says so in the report's notes;
``require`` refuses with a PrunerError (the CLI uses it when --attn-layers is given, i.e. when
the user asked for attention pruning); ``off`` never prunes attention. A ratio that would
remove every group, head or channel of a layer is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from pruners.errors import PrunerError
from pruners.adapter import Adapter
from pruners.calibration import as_calibration, require
from pruners.common import check_choice, check_range_in_model, check_ratio, normalise, parse_range
from pruners.options import option
from pruners.registry import register
from pruners.report import PruneReport, count_params, eval_mode, measure, start_report

IMPORTANCE = ("random", "l1", "l2", "taylor")
TAYLOR = ("vectorize", "param_first", "param_second", "param_mix")
GRANULARITY = ("kv-group", "query-head")
ATTENTION = ("auto", "require", "off")


@dataclass(frozen=True)
class BlockwiseConfig:
    """LLM-Pruner block-wise options."""

    ratio: float = option(help="fraction of each root layer's channels to remove (LLM-Pruner's "
                               "pruning_ratio), in [0, 1)")
    importance: str = option("l2", "channel importance", choices=IMPORTANCE)
    taylor: str = option("param_first", "Taylor variant, with importance taylor", choices=TAYLOR)
    layers: tuple[int, int] | str | None = option(None, "layer range [start, end) for attention and MLP; "
                                                        "default all", metavar="START:END")
    attn_layers: tuple[int, int] | str | None = option(
        None, "attention range (overrides layers; on the command line implies --attention require)",
        metavar="START:END")
    mlp_layers: tuple[int, int] | str | None = option(None, "MLP range (overrides layers)", metavar="START:END")
    granularity: str = option("kv-group", "what attention pruning removes", choices=GRANULARITY)
    faithful: bool = option(False, "score KV groups like LLM-Pruner (interleaved query heads)")
    attention: str = option("auto", "auto: skip attention when the ratio removes less than a head; "
                                    "require: refuse instead; off: MLP only", choices=ATTENTION)
    seed: int = option(0, "seed of importance random")

    # LLM-Pruner: 10 random 64-token samples, one backward (Taylor importance only).
    calibration_shape: ClassVar[tuple[int, int]] = (10, 64)

    @classmethod
    def from_cli(cls, given: dict) -> dict:
        """--attn-layers asks for attention pruning explicitly, so its default rule is require."""
        if given.get("attn_layers") is not None and given.get("attention") is None:
            given["attention"] = "require"
        return given

    def needs_calibration(self) -> bool:
        return self.importance == "taylor" and self.ratio > 0

    def __post_init__(self):
        normalise(self, ratio=check_ratio(self.ratio))
        check_choice(self.importance, IMPORTANCE, "importance")
        check_choice(self.taylor, TAYLOR, "taylor variant")
        check_choice(self.granularity, GRANULARITY, "attention granularity")
        check_choice(self.attention, ATTENTION, "attention rule")
        normalise(self, layers=parse_range(self.layers, "--layers"),
                  attn_layers=parse_range(self.attn_layers, "--attn-layers"),
                  mlp_layers=parse_range(self.mlp_layers, "--mlp-layers"))
        if self.faithful and self.granularity != "kv-group":
            raise PrunerError("faithful GQA scoring applies to kv-group granularity only; drop --faithful "
                             "or use --granularity kv-group")

    def ranges(self, n_layers: int) -> tuple[tuple[int, int], tuple[int, int]]:
        """(attention range, MLP range), end exclusive, checked against the model."""
        base = self.layers if self.layers is not None else (0, n_layers)
        attn = self.attn_layers if self.attn_layers is not None else base
        mlp = self.mlp_layers if self.mlp_layers is not None else base
        check_range_in_model(self.layers, n_layers, "--layers")
        check_range_in_model(attn, n_layers, "--attn-layers")
        check_range_in_model(mlp, n_layers, "--mlp-layers")
        if self.attention == "off":
            attn = (0, 0)
        return attn, mlp


def n_pruned(channels: int, ratio: float) -> int:
    """LLM-Pruner's per-layer count of channels to remove."""
    return channels - int(channels * (1 - ratio))


# --------------------------------------------------------------------------- scores


class _Scorer:
    """Per-row / per-column importance of a Linear's weight under one criterion."""

    def __init__(self, kind: str, taylor: str, grads=None, acc=None):
        self.kind, self.taylor = kind, taylor
        self.grads, self.acc = grads or {}, acc or {}

    def salience(self, lin: nn.Linear) -> torch.Tensor:
        w = lin.weight.detach().float()
        if self.kind == "l1":
            return w.abs()
        if self.kind == "l2":
            return w.pow(2)
        g = self.grads[lin.weight]
        if self.taylor in ("vectorize", "param_first"):
            return w * g
        second = w * self.acc[lin.weight] * w
        return second if self.taylor == "param_second" else w * g - 0.5 * second

    def rows(self, lin: nn.Linear) -> torch.Tensor:
        return self._reduce(self.salience(lin), dim=1)

    def cols(self, lin: nn.Linear) -> torch.Tensor:
        return self._reduce(self.salience(lin), dim=0)

    def _reduce(self, s: torch.Tensor, dim: int) -> torch.Tensor:
        if self.kind == "taylor":
            return s.sum(dim).abs() if self.taylor == "vectorize" else s.abs().sum(dim)
        return s.sum(dim)


def kv_group_scores(q_rows, k_rows, v_rows, o_cols, head_dim: int, n_kv: int, faithful: bool) -> torch.Tensor:
    """(n_kv,) score of each KV group from per-channel scores of its coupled rows/columns.

    Args:
        q_rows, o_cols: (n_heads * head_dim,) scores of q_proj rows and o_proj columns.
        k_rows, v_rows: (n_kv * head_dim,) scores of k_proj and v_proj rows.
        faithful: fold query channels onto KV channels modulo the KV width, as LLM-Pruner does
            (query heads {g, g + n_kv, ...} land in group g) instead of by ownership.
    """
    kv_width = n_kv * head_dim
    if faithful:
        # (n_heads*hd,) -> (G, n_kv*hd) -> sum over G: channel c collects q rows c, c + kv_width, ...
        per_channel = k_rows + v_rows + q_rows.view(-1, kv_width).sum(0) + o_cols.view(-1, kv_width).sum(0)
        return per_channel.view(n_kv, head_dim).sum(1)
    kv = (k_rows + v_rows).view(n_kv, head_dim).sum(1)
    q = (q_rows + o_cols).view(n_kv, -1).sum(1)  # group g owns heads g*G .. g*G+G-1, contiguous
    return kv + q


def _attention_plan(ad: Adapter, i: int, cfg: BlockwiseConfig) -> int:
    """How many KV groups (kv-group) or heads per group (query-head) layer i loses.

    0 with a positive ratio means the ratio is below one head's share (see "Small ratios").
    """
    hd, n_h, n_kv = ad.head_dim, ad.n_heads(i), ad.n_kv_heads(i)
    if cfg.granularity == "kv-group":
        remove = n_pruned(n_kv * hd, cfg.ratio) // hd
        if remove >= n_kv:
            raise PrunerError(f"ratio {cfg.ratio} would remove every KV group of layer {i}; use a smaller ratio")
    else:
        remove = (n_pruned(n_h * hd, cfg.ratio) // hd) // n_kv
        if remove >= n_h // n_kv:
            raise PrunerError(f"ratio {cfg.ratio} would remove every query head of layer {i}; use a smaller ratio")
    if remove == 0 and cfg.ratio > 0 and cfg.attention == "require":
        unit = "KV group" if cfg.granularity == "kv-group" else "query head per KV group"
        raise PrunerError(f"ratio {cfg.ratio} is too small to prune attention in layer {i}: it removes less than "
                         f"one {unit} (a KV group needs ratio >= about 1/{n_kv}); raise --ratio or drop --attn-layers")
    return remove


def _small_ratio_note(cfg: BlockwiseConfig, layers: list[int]) -> str:
    unit = "KV group" if cfg.granularity == "kv-group" else "query head per KV group"
    return (f"ratio {cfg.ratio} removes less than one {unit} in layers {_spans(layers)} "
            f"(one KV group needs ratio >= about 1/n_kv_heads); their attention is left unpruned")


def _spans(idx: list[int]) -> str:
    """[4, 5, 6, 9] -> '4-6, 9'."""
    out, start = [], None
    for j, i in enumerate(idx):
        if start is None:
            start = i
        if j + 1 == len(idx) or idx[j + 1] != i + 1:
            out.append(str(start) if start == i else f"{start}-{i}")
            start = None
    return ", ".join(out)


def _taylor_grads(model: nn.Module, ad: Adapter, cal, params: list[nn.Parameter], taylor: str):
    """Gradients (and squared per-sample gradient means) of the LM loss w.r.t. `params` only."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    ids = cal.input_ids.to(ad.device)
    acc = None
    try:
        with eval_mode(model), torch.enable_grad():
            if taylor in ("param_second", "param_mix"):
                acc = {p: torch.zeros_like(p, dtype=torch.float32) for p in params}
                for j in range(ids.shape[0]):
                    one = ids[j:j + 1]
                    loss = model(input_ids=one, labels=one, use_cache=False).loss
                    for p, g in zip(params, torch.autograd.grad(loss, params)):
                        acc[p] += g.float().pow(2) / ids.shape[0]
            loss = model(input_ids=ids, labels=ids, use_cache=False).loss
            grads = {p: g.float() for p, g in zip(params, torch.autograd.grad(loss, params))}
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
    return grads, acc, float(loss.detach())


# --------------------------------------------------------------------------- surgery


def plan(model: nn.Module, config: BlockwiseConfig):
    """What each layer loses, before any change: ((attn range, MLP range), attention plan, MLP plan).

    The attention plan maps layer -> KV groups (or query heads per group) to remove;
    the MLP plan maps layer -> channels to remove. Raises PrunerError for impossible requests.
    """
    ad = Adapter(model)
    (a0, a1), (m0, m1) = config.ranges(ad.num_layers)
    attn_plan = {i: _attention_plan(ad, i, config) for i in range(a0, a1)}
    mlp_plan = {}
    for i in range(m0, m1):
        c = ad.intermediate(i)
        k = n_pruned(c, config.ratio)
        if k >= c:
            raise PrunerError(f"ratio {config.ratio} would remove every MLP channel of layer {i}; use a smaller ratio")
        mlp_plan[i] = k
    return ((a0, a1), (m0, m1)), attn_plan, mlp_plan


def check_blockwise(model: nn.Module, config: BlockwiseConfig) -> None:
    plan(model, config)


@register("blockwise", BlockwiseConfig, check=check_blockwise)
def prune_blockwise(model: nn.Module, calibration, config: BlockwiseConfig) -> PruneReport:
    """LLM-Pruner block-wise pruning of attention KV groups (or query heads) and MLP channels."""
    ad = Adapter(model)
    ((a0, a1), (m0, m1)), attn_plan, mlp_plan = plan(model, config)
    work = any(attn_plan.values()) or any(mlp_plan.values())
    cal = as_calibration(calibration)
    taylor = config.importance == "taylor" and work and not ad.is_meta
    if taylor:
        cal = require(cal, "Taylor importance")
    report = start_report("blockwise", model, config, cal if taylor else None)
    skipped = [i for i, r in attn_plan.items() if r == 0]
    if skipped and config.ratio > 0:
        report.notes.append(_small_ratio_note(config, skipped))
    sizes_before = [ad.layer_params(i) for i in range(ad.num_layers)]

    with measure(report, ad.device):
        grads = acc = None
        if taylor:
            params = [lin.weight for i, r in attn_plan.items() if r for lin in ad.qkvo(i)]
            params += [lin.weight for i, k in mlp_plan.items() if k for lin in ad.gate_up_down(i)]
            grads, acc, loss = _taylor_grads(model, ad, cal, params, config.taylor)
            report.importance["calibration_loss"] = loss
        scorer = _Scorer(config.importance, config.taylor, grads, acc)
        gen = torch.Generator().manual_seed(config.seed)
        placeholder = ad.is_meta  # no values: arbitrary choice, exact counts

        def score(n: int, fn) -> torch.Tensor:
            if placeholder:
                return torch.zeros(n)
            if config.importance == "random":
                return torch.rand(n, generator=gen)
            return fn().double().cpu()

        removed_attn, removed_mlp = {}, {}
        hd = ad.head_dim
        for i in sorted(set(attn_plan) | set(mlp_plan)):
            remove = attn_plan.get(i, 0)
            if remove:
                q, k, v, o = ad.qkvo(i)
                n_h, n_kv = ad.n_heads(i), ad.n_kv_heads(i)
                group = n_h // n_kv
                if config.granularity == "kv-group":
                    s = score(n_kv, lambda: kv_group_scores(scorer.rows(q), scorer.rows(k), scorer.rows(v),
                                                            scorer.cols(o), hd, n_kv, config.faithful))
                    drop_kv = torch.argsort(s, stable=True)[:remove].sort().values
                    keep_kv = _complement(drop_kv, n_kv)
                    keep_q = (keep_kv[:, None] * group + torch.arange(group)).reshape(-1)
                    drop_q = (drop_kv[:, None] * group + torch.arange(group)).reshape(-1)
                else:
                    s = score(n_h, lambda: (scorer.rows(q) + scorer.cols(o)).view(n_h, hd).sum(1))
                    # lowest `remove` heads inside every group: (n_kv, G) -> positions within group
                    within = torch.argsort(s.view(n_kv, group), dim=1, stable=True)[:, :remove]
                    drop_q = (torch.arange(n_kv)[:, None] * group + within).reshape(-1).sort().values
                    drop_kv = torch.zeros(0, dtype=torch.long)
                    keep_kv = torch.arange(n_kv)
                    keep_q = _complement(drop_q, n_h)
                ad.prune_attention(i, keep_kv, keep_q)
                removed_attn[i] = {"kv_heads": drop_kv.tolist(), "q_heads": drop_q.tolist()}
            k_mlp = mlp_plan.get(i, 0)
            if k_mlp:
                g, u, d = ad.gate_up_down(i)
                s = score(g.out_features, lambda: scorer.rows(g) + scorer.rows(u) + scorer.cols(d))
                drop = torch.argsort(s, stable=True)[:k_mlp].sort().values
                ad.prune_mlp(i, _complement(drop, g.out_features))
                removed_mlp[i] = drop.tolist()
        del grads, acc
        if placeholder and work:
            report.notes.append("dry run on the meta device: which heads/channels is arbitrary (counts only)")

    report.removed = {"attention": removed_attn, "mlp": removed_mlp,
                      "attn_layers": [a0, a1], "mlp_layers": [m0, m1]}
    report.params_after = count_params(model)
    report.layer_sizes = ad.layer_sizes()
    report.sparsity_per_layer = {i: 1.0 - ad.layer_params(i) / sizes_before[i] for i in range(ad.num_layers)}
    if getattr(model.config, "prunebench_layer_sizes", None):
        report.notes.append("layer widths differ: save with pruners.saving.save_pruned and load with "
                            "pruners.saving.load_pruned (config carries prunebench_layer_sizes)")
    return report


def _complement(drop: torch.Tensor, n: int) -> torch.Tensor:
    mask = torch.ones(n, dtype=torch.bool)
    mask[drop] = False
    return torch.arange(n)[mask]
