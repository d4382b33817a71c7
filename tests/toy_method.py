"""A pruning method from one file, as a separate package would ship it ("toy").

It zeroes the lowest-scoring fraction `ratio` of every row of each decoder layer's MLP
projection (down_proj by default) and keeps the result with masks, so post-training must hold
those weights at zero. Nothing outside this file knows it exists: the CLI flags
(``--projection``, ``--score``) and the study-file keys come from `ToyConfig`'s fields; whether
it draws calibration data, and how much by default, from `needs_calibration` and
`calibration_shape`; that post-training keeps its masks, from its report's `keeps_masks`.

Made importable by an entry point (group ``prunebench.pruners``, ``toy = "toy_method"``) or by
``PRUNEBENCH_PLUGINS=toy_method`` with this directory on ``PYTHONPATH``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from pruners.adapter import Adapter
from pruners.calibration import as_calibration, require
from pruners.common import check_choice, check_ratio
from pruners.options import option
from pruners.registry import register
from pruners.report import PruneReport, count_params, eval_mode, measure, start_report

PROJECTIONS = ("down_proj", "up_proj", "gate_proj")
SCORES = ("magnitude", "activation")


@dataclass
class ToyConfig:
    """Options of the toy method."""

    ratio: float = option(help="fraction of each row's weights to zero, in [0, 1)")
    projection: str = option("down_proj", "which MLP projection to prune", choices=PROJECTIONS)
    score: str = option("magnitude", "rank weights by |W| (magnitude) or |W| times the input norm "
                                     "on calibration data (activation)", choices=SCORES)
    hold_zeros: bool = option(True, "keep the zeroed weights at zero during post-training")

    calibration_shape: ClassVar[tuple[int, int]] = (4, 32)

    def __post_init__(self):
        self.ratio = check_ratio(self.ratio)
        check_choice(self.projection, PROJECTIONS, "toy projection")
        check_choice(self.score, SCORES, "toy score")

    def needs_calibration(self) -> bool:
        return self.score == "activation" and self.ratio > 0


@torch.no_grad()
def _input_norms(ad: Adapter, linears: list, calibration) -> list[torch.Tensor]:
    """||X_j||_2 over all calibration tokens, per input feature of each Linear."""
    sq = [torch.zeros(lin.in_features, dtype=torch.float64) for lin in linears]

    def hook_for(k):
        def hook(module, args):
            x = args[0].float()  # (b, L, in)
            sq[k] += x.pow(2).sum(dim=(0, 1)).double().cpu()
        return hook

    handles = [lin.register_forward_pre_hook(hook_for(k)) for k, lin in enumerate(linears)]
    try:
        with eval_mode(ad.model):
            for ids in calibration.batches(4, ad.device):
                ad.base(input_ids=ids, use_cache=False)
    finally:
        for h in handles:
            h.remove()
    return [s.sqrt() for s in sq]


@register("toy", ToyConfig)
def prune_toy(model: torch.nn.Module, calibration, config: ToyConfig) -> PruneReport:
    """Zero the lowest-scoring fraction of every row of one MLP projection (masks kept)."""
    ad = Adapter(model)
    cal = as_calibration(calibration)
    if config.needs_calibration():
        cal = require(cal, "toy activation scoring")
    report = start_report("toy", model, config, cal if config.needs_calibration() else None)
    linears = [dict(zip(("gate_proj", "up_proj", "down_proj"), ad.gate_up_down(i)))[config.projection]
               for i in range(ad.num_layers)]
    masks, zeroed = {}, 0
    with measure(report, ad.device), torch.no_grad():
        norms = _input_norms(ad, linears, cal) if config.needs_calibration() else [None] * len(linears)
        for i, (lin, norm) in enumerate(zip(linears, norms)):
            w = lin.weight  # (out, in)
            score = w.detach().abs().float()
            if norm is not None:
                score = score * norm.to(score.device, score.dtype)  # broadcast over rows
            k = int(config.ratio * w.shape[1])  # weights zeroed per row
            keep = torch.ones_like(w, dtype=torch.bool)
            if k:
                keep.scatter_(1, torch.topk(score, k, dim=1, largest=False).indices, False)
            w.mul_(keep.to(w.dtype))
            masks[f"{ad.layer_prefix(i)}mlp.{config.projection}.weight"] = keep.cpu()
            zeroed += int((~keep).sum())
            report.sparsity_per_layer[i] = float((~keep).float().mean())
    report.params_after = count_params(model) - zeroed  # zeroed weights count as removed
    report.removed = {"zeroed_weights": zeroed, "projection": config.projection}
    report.layer_sizes = ad.layer_sizes()
    report.masks = masks if config.hold_zeros and zeroed else None
    report.keeps_masks = report.masks is not None
    return report
