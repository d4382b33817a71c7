"""Width pruning of the hidden (embedding) dimension, Minitron style.

Importance of hidden channel j (paper Eq. 2) comes from the outputs of every RMSNorm that
feeds the residual stream's consumers (both norms of every layer and the final norm),
captured with forward hooks on calibration data. The aggregation is explicit:

* ``seq_agg`` over the tokens of a sample: ``mean`` (Minitron), ``sum`` or ``l2``;
* ``batch_agg`` over samples: ``l2`` (Minitron), ``mean`` or ``sum``;
* ``norm_agg`` over the norm layers: ``sum`` (default), ``mean`` or ``max``.

Signed aggregations (sum/mean of both) are ranked by absolute value. The least important
channels are removed from every tensor that carries the hidden dimension: the embedding,
every norm weight, q/k/v and gate/up input columns, o_proj and down_proj output rows, and
the LM head (tied embeddings stay tied).

The number of channels is the one closest to the target parameter ratio, rounded to a
multiple of `num_attention_heads` on Llama, because transformers (>= 5) refuses to load a
Llama config whose hidden size is not such a multiple. The report states the exact ratio.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from pruners.errors import PrunerError
from pruners.adapter import Adapter
from pruners.calibration import as_calibration, require
from pruners.common import RatioConfig
from pruners.options import option
from pruners.registry import register
from pruners.report import PruneReport, count_params, eval_mode, measure, start_report

SEQ_AGG = ("mean", "sum", "l2")
BATCH_AGG = ("l2", "mean", "sum")
NORM_AGG = ("sum", "mean", "max")


@dataclass(frozen=True)
class WidthConfig(RatioConfig):
    """Hidden-channel (width) pruning options."""

    ratio: float = option(help="target fraction of parameters to remove, in [0, 1)")
    seq_agg: str = option("mean", "aggregation over the tokens of a sample", choices=SEQ_AGG)
    batch_agg: str = option("l2", "aggregation over samples", choices=BATCH_AGG)
    norm_agg: str = option("sum", "aggregation over norm layers", choices=NORM_AGG)
    batch_size: int = option(4, "calibration samples per forward pass")

    CHOICES: ClassVar = (("seq_agg", SEQ_AGG, "seq_agg"), ("batch_agg", BATCH_AGG, "batch_agg"),
                         ("norm_agg", NORM_AGG, "norm_agg"))


def channels_to_keep(model: torch.nn.Module, ratio: float) -> int:
    """Hidden width whose pruning comes closest to `ratio`, aligned for a loadable config."""
    ad = Adapter(model)
    hidden = ad.hidden_size
    n_remove = round(ratio * count_params(model) / ad.params_per_hidden_channel())
    a = ad.hidden_multiple()
    keep = a * round((hidden - n_remove) / a)
    keep = min(keep, hidden)
    if keep <= 0:
        raise PrunerError(f"ratio {ratio} would remove every hidden channel (width {hidden}, multiple of {a}); "
                         "use a smaller ratio")
    return keep


@torch.no_grad()
def hidden_importance(model: torch.nn.Module, calibration, config: WidthConfig) -> torch.Tensor:
    """(H,) float64 importance of each hidden channel (see the module docstring)."""
    ad = Adapter(model)
    cal = as_calibration(calibration)
    norms = ad.norms()
    acc = torch.zeros(len(norms), ad.hidden_size, dtype=torch.float64)
    n_samples = 0

    def make_hook(i):
        def hook(module, args, output):
            x = output.float()  # (b, L, H)
            if config.seq_agg == "mean":
                per = x.mean(dim=1)
            elif config.seq_agg == "sum":
                per = x.sum(dim=1)
            else:
                per = x.pow(2).sum(dim=1).sqrt()
            # (b, H) -> (H,) running sum over samples (of squares for l2)
            per = per.pow(2) if config.batch_agg == "l2" else per
            acc[i] += per.sum(dim=0).double().cpu()
        return hook

    handles = [norm.register_forward_hook(make_hook(i)) for i, norm in enumerate(norms)]
    try:
        with eval_mode(model):
            for ids in cal.batches(config.batch_size, ad.device):
                ad.base(input_ids=ids, use_cache=False)
                n_samples += ids.shape[0]
    finally:
        for h in handles:
            h.remove()
    if config.batch_agg == "l2":
        acc = acc.sqrt()
    elif config.batch_agg == "mean":
        acc = acc / max(n_samples, 1)
    if config.norm_agg == "sum":
        score = acc.sum(0)
    elif config.norm_agg == "mean":
        score = acc.mean(0)
    else:
        score = acc.abs().max(0).values
    return score.abs()


def check_width(model: torch.nn.Module, config: WidthConfig) -> None:
    channels_to_keep(model, config.ratio)


@register("width", WidthConfig, check=check_width)
def prune_width(model: torch.nn.Module, calibration, config: WidthConfig) -> PruneReport:
    """Remove the least important hidden channels everywhere the hidden dimension appears."""
    ad = Adapter(model)
    hidden = ad.hidden_size
    keep_n = channels_to_keep(model, config.ratio)
    cal = as_calibration(calibration)
    if keep_n < hidden and not ad.is_meta:
        cal = require(cal, "width pruning")
    report = start_report("width", model, config, cal)
    with measure(report, ad.device):
        removed: list[int] = []
        if keep_n == hidden:
            report.notes.append(f"ratio {config.ratio} rounds to no hidden channel; nothing removed")
        else:
            if ad.is_meta:
                score = torch.arange(hidden, 0, -1, dtype=torch.float64)  # keep the first channels
                report.notes.append("dry run on the meta device: channel choice is arbitrary (counts only)")
            else:
                score = hidden_importance(model, cal, config)
            order = torch.argsort(-score, stable=True)
            keep = order[:keep_n].sort().values
            removed = order[keep_n:].sort().values.tolist()
            ad.prune_hidden(keep)
        report.removed = {"hidden_channels": removed, "hidden_before": hidden, "hidden_after": keep_n}
    report.params_after = count_params(model)
    report.layer_sizes = ad.layer_sizes()
    frac = len(removed) / hidden
    report.sparsity_per_layer = {i: frac for i in range(ad.num_layers)}
    return report
