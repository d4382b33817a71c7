"""Depth pruning: remove whole decoder layers whose output is most like their input.

Importance of layer i (paper Eq. 1, ShortGPT / LLM-Streamline family): the mean over
calibration samples and tokens of cos(x_i, x_{i+1}), where x_i is the hidden state entering
layer i and x_{i+1} the one leaving it, both captured with forward hooks on the layers (not
`output_hidden_states`, whose last entry is after the final norm).

The number of layers k comes from the ratio and its ``unit``:

* ``params`` (default): the k whose removal comes closest to the target parameter ratio,
  k = round(ratio * params / mean params per layer);
* ``layers``: the ratio is a fraction of the decoder layers, k = round(ratio * layers). A
  family whose sizes differ in embedding share then loses the same fraction of its layers at
  every size (with 8 layers, 0.15/0.25/0.35 remove 1/2/3), so a size comparison is not
  confounded with how much of the network went; the report still states the achieved
  parameter fraction, which is what the scaling law reads.

Variants:

* ``oneshot`` (default): score once, remove the k most similar layers;
* ``block`` (LLM-Streamline): remove the run of k consecutive layers whose input x_i and
  output x_{i+k} are most similar;
* ``iterative``: remove the single most similar layer, re-score the shorter model, repeat k
  times.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F

from pruners.errors import PrunerError
from pruners.adapter import Adapter
from pruners.calibration import as_calibration, require
from pruners.common import RatioConfig
from pruners.options import option
from pruners.registry import register
from pruners.report import PruneReport, count_params, eval_mode, measure, start_report

VARIANTS = ("oneshot", "block", "iterative")
UNITS = ("params", "layers")


@dataclass(frozen=True)
class DepthConfig(RatioConfig):
    """Depth pruning options."""

    ratio: float = option(help="target fraction to remove, in [0, 1): of the parameters, or of the layers "
                               "with unit = layers")
    variant: str = option("oneshot", "which layers go: the k most similar (oneshot), the most similar run of k "
                                     "(block, LLM-Streamline), or one at a time with re-scoring (iterative)",
                          choices=VARIANTS)
    batch_size: int = option(4, "calibration samples per forward pass")
    unit: str = option("params", "what the ratio is a fraction of: the parameters (params), or the decoder "
                                 "layers (layers: the same share of layers at every model size)",
                       choices=UNITS, flag="depth-unit")

    CHOICES: ClassVar = (("variant", VARIANTS, "depth variant"), ("unit", UNITS, "depth unit"))


def layers_for_ratio(model: torch.nn.Module, ratio: float, unit: str = "params") -> int:
    """The number of layers to remove: closest to `ratio` of the parameters, or of the layers.

    Raises a PrunerError when that would be every layer.
    """
    ad = Adapter(model)
    if unit == "layers":
        k = int(round(ratio * ad.num_layers))
    else:
        per_layer = sum(ad.layer_params(i) for i in range(ad.num_layers)) / ad.num_layers
        k = int(round(ratio * count_params(model) / per_layer)) if per_layer else 0
    if k >= ad.num_layers:
        raise PrunerError(f"ratio {ratio} would remove {k} of the model's {ad.num_layers} layers, i.e. all of "
                         f"them; use a smaller ratio")
    return k


@torch.no_grad()
def boundary_similarity(model: torch.nn.Module, calibration, batch_size: int = 4, span: int = 1) -> torch.Tensor:
    """Mean cosine similarity between the hidden state entering layer i and leaving layer i+span-1.

    Args:
        span: 1 scores single layers; k scores blocks of k consecutive layers.
    Returns:
        (L - span + 1,) float64 tensor: entry i for the block starting at layer i.
    """
    ad = Adapter(model)
    cal = as_calibration(calibration)
    n = ad.num_layers
    sums = torch.zeros(n - span + 1, dtype=torch.float64)
    count = 0
    states: list[torch.Tensor | None] = [None] * (n + 1)  # x_0 .. x_n for the current batch

    def make_hook(i):
        def hook(module, args, kwargs, output):
            x_in = args[0] if args else kwargs["hidden_states"]
            x_out = output[0] if isinstance(output, tuple) else output
            states[i] = x_in
            states[i + 1] = x_out
        return hook

    handles = [layer.register_forward_hook(make_hook(i), with_kwargs=True)
               for i, layer in enumerate(ad.layers)]
    try:
        with eval_mode(model):
            for ids in cal.batches(batch_size, ad.device):
                ad.base(input_ids=ids, use_cache=False)
                for i in range(n - span + 1):
                    # (b, L, H) x 2 -> (b, L): cosine per token, in float32
                    cos = F.cosine_similarity(states[i].float(), states[i + span].float(), dim=-1)
                    sums[i] += cos.double().sum().item()
                count += ids.shape[0] * ids.shape[1]
                states[:] = [None] * (n + 1)
    finally:
        for h in handles:
            h.remove()
    return sums / max(count, 1)


def check_depth(model: torch.nn.Module, config: DepthConfig) -> None:
    layers_for_ratio(model, config.ratio, config.unit)


@register("depth", DepthConfig, check=check_depth)
def prune_depth(model: torch.nn.Module, calibration, config: DepthConfig) -> PruneReport:
    """Remove the decoder layers whose input and output hidden states are most similar."""
    ad = Adapter(model)
    k = layers_for_ratio(model, config.ratio, config.unit)
    cal = as_calibration(calibration)
    if k > 0 and not ad.is_meta:
        cal = require(cal, "depth pruning")
    report = start_report("depth", model, config, cal)
    with measure(report, ad.device):
        n_orig = ad.num_layers
        orig = list(range(n_orig))  # current position -> original layer index
        removed: list[int] = []
        if k == 0:
            report.notes.append(f"ratio {config.ratio} ({config.unit}) is below half a layer's share; nothing removed")
        elif ad.is_meta:
            # No weights, no scores: which layers is arbitrary, the counts are exact.
            removed = orig[-k:]
            report.notes.append("dry run on the meta device: removed the last k layers (counts only)")
            ad.remove_layers(removed)
        elif config.variant == "oneshot":
            sims = boundary_similarity(model, cal, config.batch_size)
            report.importance["cosine"] = sims.tolist()
            top = torch.argsort(-sims, stable=True)[:k]
            removed = sorted(int(i) for i in top)
            ad.remove_layers(removed)
        elif config.variant == "block":
            sims = boundary_similarity(model, cal, config.batch_size, span=k)
            report.importance["block_cosine"] = sims.tolist()
            start = int(torch.argmax(sims))  # first maximum on ties
            removed = list(range(start, start + k))
            ad.remove_layers(removed)
        else:  # iterative
            steps = []
            for _ in range(k):
                sims = boundary_similarity(model, cal, config.batch_size)
                j = int(torch.argmax(sims))
                steps.append({"scores": sims.tolist(), "removed": orig[j]})
                removed.append(orig.pop(j))
                ad.remove_layers([j])
            report.importance["iterative"] = steps
            removed.sort()
        report.removed = {"layers": removed, "k": k}
        report.sparsity_per_layer = {i: (1.0 if i in removed else 0.0) for i in range(n_orig)}
    report.params_after = count_params(model)
    report.layer_sizes = ad.layer_sizes()
    return report
