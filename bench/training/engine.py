"""What the trainer (`bench.training.trainer.train`) runs on: the single-process engine, whose
methods `bench.training.distributed` overrides for DDP and FSDP2, and the numerics every engine
shares: precision (float32 master weights, bf16 autocast on CUDA), the held-out loss every
checkpoint and L0 share, AdamW parameter groups, activation checkpointing and the data order. Keep-masks are the
pruners' (`pruners.masks.mask_pairs`, `pruners.masks.zero_masked`), not re-implemented here.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch

from bench.errors import UsageError
from bench.training.recipe import Recipe

WEIGHTS = "weights.pt"  # one process's training-state file: model and optimizer state dicts

def _device(model) -> torch.device:
    return next(model.parameters()).device


def _autocast(device: torch.device, recipe: Recipe):
    if device.type == "cuda" and recipe.bf16:
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


MASTER_DTYPE = torch.float32  # training always holds float32 master weights


@contextlib.contextmanager
def master_weights(model):
    """Hold `model`'s floating parameters and buffers in float32 for the block, then restore them.

    Every held-out loss is measured on the weights as training holds them, so L0 of a bf16 base
    and the checkpoints of its float32 master copy differ by training only, never by precision.
    Each tensor gets its own dtype back (bf16 -> float32 -> bf16 is exact), so a memoised base
    model leaves the block bit for bit as it entered.
    """
    saved = [(t, t.dtype) for t in (*model.parameters(), *model.buffers())
             if t.is_floating_point() and t.dtype != MASTER_DTYPE]
    for t, _ in saved:
        t.data = t.data.to(MASTER_DTYPE)
    try:
        yield model
    finally:
        for t, dtype in saved:
            t.data = t.data.to(dtype)


@torch.no_grad()
def heldout_loss(model, windows: torch.Tensor, batch_size: int, recipe: Recipe | None = None) -> float:
    """Mean next-token NLL over `windows` (n, seq_len): the one numeric path of every held-out loss.

    Float32 master weights (`master_weights`), the recipe's autocast, eval mode (no dropout),
    and `bench.evaluation.perplexity.window_nll_sum` (the chunked loss). L0 before training and the loss
    at every checkpoint both come from here, on every device.
    """
    from bench.evaluation.perplexity import window_nll_sum

    was = model.training
    model.eval()
    try:
        with master_weights(model), _autocast(_device(model), recipe or Recipe()):
            total, n = window_nll_sum(model, windows, batch_size)
    finally:
        model.train(was)
    return total / n


def _param_groups(model, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.dim() >= 2 else no_decay).append(p)  # no decay on norms and biases
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _checkpointing(model, on: bool) -> None:
    """Switch activation (gradient) checkpointing; transformers 5 renamed the methods."""
    verb = "enable" if on else "disable"
    fn = getattr(model, f"activation_checkpointing_{verb}", None) or getattr(model, f"gradient_checkpointing_{verb}", None)
    if fn is None:
        raise UsageError(f"{type(model).__name__} does not support gradient checkpointing; set grad_checkpointing=False")
    fn()


class SingleProcess:
    """The parallelism `train` runs under by default: one process, nothing to split or reduce.

    `train` reads like a single-device loop; each place where processes would differ goes
    through one of these methods, and `bench.training.distributed` overrides them for DDP and FSDP2.
    """

    rank, world = 0, 1

    def wrap(self, model):
        """The module the loop calls (DDP wraps; FSDP shards in place)."""
        return model

    def inner(self, model):
        """The model itself, without a wrapper: parameter names, evaluation."""
        return model

    def grad_sync(self, model, last: bool):
        """Context for one micro-batch's forward/backward; `last` is the step's last on this rank."""
        return contextlib.nullcontext()

    def all_sum(self, t: torch.Tensor) -> torch.Tensor:
        return t

    def local(self, t: torch.Tensor) -> torch.Tensor:
        """This process's part of a (possibly sharded) parameter or gradient, for in-place updates."""
        return t

    def shard_like(self, full: torch.Tensor, param) -> torch.Tensor:
        """This process's part of a full tensor laid out like `param` (an N:M mask)."""
        return full

    def scalar(self, t) -> float:
        return float(t)

    def save_state(self, model, optimizer, result) -> None:
        """Called at each checkpoint without a `bench.training.train_state.Checkpointer`: the distributed
        engines then keep every checkpoint's sharded state (the behaviour before ``state_every``)."""

    # -- the training state (`bench.training.train_state`): collective under the distributed engines

    def barrier(self) -> None:
        """Wait for every process (one process: nothing to wait for)."""

    def agree(self, ok: bool) -> bool:
        """True when `ok` holds on every process."""
        return ok

    def write_weights(self, model, optimizer, folder: Path) -> None:
        """The model (with masks applied, LoRA adapters included) and AdamW state, into `folder`."""
        torch.save({"model": self.inner(model).state_dict(), "optim": optimizer.state_dict()}, folder / WEIGHTS)

    def read_weights(self, model, optimizer, folder: Path) -> str | None:
        """Load what `write_weights` wrote; None on success, else why not (nothing changed then)."""
        try:
            saved = torch.load(folder / WEIGHTS, map_location="cpu", weights_only=True)
        except Exception as exc:  # truncated or foreign file: the caller starts fresh
            return f"{WEIGHTS} does not load ({exc.__class__.__name__})"
        live = self.inner(model).state_dict()
        sd = saved.get("model", {})
        if set(sd) != set(live) or any(sd[k].shape != live[k].shape for k in live):
            return f"{WEIGHTS} holds another model's weights"
        osd = saved.get("optim", {})
        groups = [len(g["params"]) for g in optimizer.param_groups]
        if [len(g.get("params", ())) for g in osd.get("param_groups", ())] != groups:
            return f"{WEIGHTS} holds another optimizer's state"
        self.inner(model).load_state_dict(sd)
        optimizer.load_state_dict(osd)
        return None


def _order(n: int, epoch: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g)
