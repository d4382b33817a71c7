"""Keep-masks: weights a method zeroes in place and post-training must hold at zero.

A method whose surgery masks weights instead of removing them (N:M sparsity, or a plugin's
unstructured pruning) returns the masks on its report, keyed by parameter name with True =
kept, and sets ``PruneReport.keeps_masks``. These helpers are the contract's other half, for
any such method: re-apply the masks, keep them applied through an optimizer, and count
violations.
"""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def apply_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    """Zero every weight whose mask entry is False (call after each optimizer step)."""
    params = dict(model.named_parameters())
    for name, mask in masks.items():
        p = params[name]
        p.mul_(mask.to(device=p.device, dtype=p.dtype))


def keep_masks(optimizer: torch.optim.Optimizer, model: nn.Module, masks: dict[str, torch.Tensor]):
    """Re-apply `masks` after every `optimizer.step()`; returns the hook handle (``.remove()``)."""
    return optimizer.register_step_post_hook(lambda *_: apply_masks(model, masks))


@torch.no_grad()
def mask_violations(model: nn.Module, masks: dict[str, torch.Tensor]) -> int:
    """How many weights the masks prune are not exactly zero (0 when the pattern held)."""
    params = dict(model.named_parameters())
    return int(sum(int((params[n].detach()[~m.to(params[n].device)] != 0).sum()) for n, m in masks.items()))
