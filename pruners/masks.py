"""Keep-masks: weights a method zeroes in place and post-training must hold at zero.

A method whose surgery masks weights instead of removing them (N:M sparsity, or a plugin's
unstructured pruning) returns the masks on its report, keyed by parameter name with True =
kept, and sets ``PruneReport.keeps_masks``. These helpers are the contract's other half, for
any such method: re-apply the masks, keep them applied through an optimizer, and count
violations. The post-training loop (`bench.training.trainer.train`) masks with the same two
pieces, `mask_pairs` and `zero_masked`, applied to each process's shard of the weights and of
their gradients.
"""

from __future__ import annotations

import torch
from torch import nn


def mask_pairs(model: nn.Module, masks: dict[str, torch.Tensor] | None) -> tuple[list, list]:
    """(parameters, masks) of the masked weights, each mask as 1/0 on its parameter's device and dtype.

    Raises:
        ValueError: a mask names a parameter the model does not have.
    """
    if not masks:
        return [], []
    named = dict(model.named_parameters())
    missing = sorted(set(masks) - set(named))
    if missing:
        raise ValueError(f"masks name parameters the model does not have, e.g. {missing[0]!r}")
    params = [named[n] for n in masks]
    return params, [masks[n].to(device=p.device, dtype=p.dtype) for n, p in zip(masks, params)]


@torch.no_grad()
def zero_masked(tensors, masks) -> None:
    """Multiply each tensor (a weight, or its gradient) in place by its 1/0 mask from `mask_pairs`."""
    tensors = list(tensors)
    if tensors:
        torch._foreach_mul_(tensors, list(masks))


@torch.no_grad()
def apply_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    """Zero every weight whose mask entry is False (call after each optimizer step)."""
    zero_masked(*mask_pairs(model, masks))


def keep_masks(optimizer: torch.optim.Optimizer, model: nn.Module, masks: dict[str, torch.Tensor]):
    """Re-apply `masks` after every `optimizer.step()`; returns the hook handle (``.remove()``)."""
    return optimizer.register_step_post_hook(lambda *_: apply_masks(model, masks))


@torch.no_grad()
def mask_violations(model: nn.Module, masks: dict[str, torch.Tensor]) -> int:
    """How many weights the masks prune are not exactly zero (0 when the pattern held)."""
    params = dict(model.named_parameters())
    return int(sum(int((params[n].detach()[~m.to(params[n].device)] != 0).sum()) for n, m in masks.items()))
