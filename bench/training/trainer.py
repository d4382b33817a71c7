"""The trainer: one loop (`train`) for post-training a case and pre-training the nano zoo.

`train(model, windows, recipe)` trains every parameter (or LoRA adapters, `add_lora`) of a model
on token windows with AdamW, and records a checkpoint after each of `recipe.checkpoint_steps`:
tokens seen, training loss averaged over the interval, held-out loss on fixed windows (the same
for every case), learning rate and wall time. A case's post-training around it (its corpus
slices, L0, LoRA merging, several processes) is `bench.training.posttrain`.

Token accounting: a step consumes `batch_tokens` input tokens (sequences x seq_len), split into
micro-batches of `micro_batch_tokens` whose gradients accumulate; "tokens seen" counts input
tokens, so a checkpoint after step k sits at exactly k x batch_tokens (every checkpoint_every
tokens, or log-spaced, `bench.training.recipe.Recipe.checkpoint_steps`).

N:M masks (2:4) are kept with the pruners' own masking (`pruners.masks`): the gradients of pruned
weights are zeroed before each step and the masks re-applied after it, so pruned weights are
exactly zero at every checkpoint (paper Eq. 4).

A NaN or inf loss (or gradient norm) stops training; the result carries the trajectory so far
and ``diverged=True``, and the benchmark keeps it in the record with status ``diverged``.

With ``recipe.state_every`` and a `bench.training.train_state.Checkpointer`, the loop saves a resumable
state every few checkpoints and, given an accepted state, continues from it: the same steps,
data order and random draws as a run that was never stopped, so the trajectory is the same.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field

import torch

from bench.errors import UsageError
from bench.progress import QUIET, Progress
from bench.training.engine import SingleProcess, _autocast, _checkpointing, _device, _order, _param_groups, heldout_loss
from bench.training.distill import distillation
from bench.training.recipe import LORA_TARGETS, Recipe
from pruners.masks import mask_pairs, zero_masked


@dataclass
class TrainResult:
    """What one training run produced (JSON-ready through `to_dict`)."""

    trajectory: list[dict] = field(default_factory=list)
    initial_val_loss: float | None = None
    diverged: bool = False
    divergence: dict | None = None
    steps: int = 0
    tokens: int = 0
    micro_batches: int = 0
    train_s: float = 0.0
    wall_s: float = 0.0
    trainable_params: int = 0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["tokens_per_s"] = self.tokens / self.train_s if self.train_s > 0 else None
        return d


# --------------------------------------------------------------------------- the loop


def train(model, windows: torch.Tensor, recipe: Recipe, *, heldout: torch.Tensor | None = None,
          masks: dict | None = None, checkpoint_eval=None, progress: Progress = QUIET,
          desc: str = "post-train", parallel: SingleProcess | None = None, state=None,
          teacher=None) -> TrainResult:
    """Train `model` in place on `windows` (n, seq_len) as `recipe` says.

    Args:
        heldout: (n_val, seq_len) windows measured at each checkpoint (None: no held-out loss).
        masks: parameter name -> keep-mask (True = kept); masked weights stay exactly zero.
        checkpoint_eval: optional ``fn(model) -> dict`` stored under ``extra`` at each checkpoint.
        parallel: how processes share the work (default: one process). Every process walks the
            same data order; micro-batch k of a step runs on rank k mod world, so the global
            batch and the trajectory are those of one process.
        state: a `bench.training.train_state.Checkpointer`: saves the training state every
            ``recipe.state_every`` checkpoints, and restores the state it was given first.
        progress: where rank 0 shows the phase `desc` (tokens trained, the last loss).
        teacher: the frozen teacher of a distillation objective (`bench.training.distill`), placed
            by the caller like the student; None under ``objective = "ce"``.
    Returns:
        The trajectory and counters; ``diverged`` is set (and training stopped) on a NaN/inf.
    """
    if windows.dim() != 2 or windows.shape[1] != recipe.seq_len:
        raise ValueError(f"windows must be (n, {recipe.seq_len}), got {tuple(windows.shape)}")
    mb = recipe.micro_batch_tokens // recipe.seq_len  # sequences per micro-batch
    accum = recipe.accumulation
    checkpoints = set(recipe.checkpoint_steps)
    need = recipe.steps * accum * mb
    if need > windows.shape[0] and not recipe.repeat:
        raise UsageError(
            f"post-training budget of {recipe.tokens:,} tokens exceeds the {recipe.train_slice} slice "
            f"({windows.shape[0] * recipe.seq_len:,} tokens in {recipe.seq_len}-token windows); lower tokens, "
            f"raise posttrain_frac, or set repeat=True")
    eval_bs = recipe.eval_batch_size
    par = parallel or SingleProcess()
    if accum % par.world:
        raise UsageError(f"{par.world} processes cannot split {accum} micro-batches per step evenly")
    local_accum = accum // par.world
    res = TrainResult(trainable_params=sum(p.numel() for p in model.parameters() if p.requires_grad))
    if recipe.grad_checkpointing:
        _checkpointing(model, True)
    if recipe.objective != "ce" and teacher is None:
        raise ValueError(f"objective {recipe.objective!r} needs a teacher")
    # Hooked before the engine wraps the student: the loss is computed inside its forward.
    kd = distillation(model, teacher, recipe).__enter__()
    model = par.wrap(model)  # FSDP moves each shard to its rank's device as it shards
    base = par.inner(model)
    device = _device(base)
    params = [p for p in base.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(_param_groups(base, recipe.weight_decay), lr=recipe.lr,
                            betas=(recipe.beta1, recipe.beta2), eps=recipe.eps)
    mparams, mvals = mask_pairs(base, masks)  # the keep-masks, as the pruners apply them
    mvals = [par.shard_like(m, p) for p, m in zip(mparams, mvals)]  # each process masks its shard
    zero_masked([par.local(p) for p in mparams], mvals)  # start from the exact pattern

    ident = resumed = None
    if state is not None:
        from bench.training.train_state import inputs_identity, rng_restore, rng_snapshot

        ident = inputs_identity(recipe, windows, masks, par.world)
        resumed = state.restore(model, opt, par, ident)  # weights and AdamW state, or None: fresh
    t_start = time.perf_counter()
    epoch, cursor = 0, 0
    if resumed is not None:
        res = TrainResult(**resumed.result)
        epoch, cursor = resumed.epoch, resumed.cursor
        t_start -= resumed.wall_s  # wall time continues where the killed run's left off
    elif heldout is not None:
        res.initial_val_loss = heldout_loss(base, heldout, eval_bs, recipe)
    model.train()
    order = _order(windows.shape[0], epoch, recipe.seed)
    interval_loss, interval_kd, interval_steps = 0.0, 0.0, 0  # a state is saved at a checkpoint: all zero
    bar = (progress if par.rank == 0 else QUIET).phase(desc, recipe.tokens, "tokens")
    bar.to(res.tokens)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(recipe.seed)
        if resumed is not None:
            rng_restore(resumed.rng, device)
        for step in range(res.steps, recipe.steps):
            t0 = time.perf_counter()
            lr = recipe.lr_at(step)
            for group in opt.param_groups:
                group["lr"] = lr
            loss_sum = torch.zeros((), device=device)
            kd_sum = torch.zeros((), device=device)
            for k in range(accum):
                if cursor + mb > order.numel():  # next pass over the slice (repeat=True only)
                    epoch, cursor = epoch + 1, 0
                    order = _order(windows.shape[0], epoch, recipe.seed)
                rows = order[cursor:cursor + mb]
                cursor += mb
                res.micro_batches += 1  # counted over all processes
                if k % par.world != par.rank:
                    continue
                x = windows[rows].to(device, non_blocking=True)  # (mb, S)
                with par.grad_sync(model, last=k // par.world == local_accum - 1):
                    with _autocast(device, recipe):
                        if kd is None:
                            loss = model(input_ids=x, labels=x, use_cache=False).loss
                        else:
                            loss = model(**kd.inputs(x)).loss
                            kd_sum += kd.terms().kd.float()
                    (loss / local_accum).backward()  # the engines average over processes
                loss_sum += loss.detach().float()
            pairs = [(par.local(p.grad), m) for p, m in zip(mparams, mvals) if p.grad is not None]
            zero_masked([g for g, _ in pairs], [m for _, m in pairs])  # pruned weights get no update
            gnorm = torch.nn.utils.clip_grad_norm_(params, recipe.grad_clip) if recipe.grad_clip > 0 else None
            gnorm = None if gnorm is None else par.scalar(gnorm)
            step_loss = float(par.all_sum(loss_sum)) / accum  # the one host sync per step
            if kd is not None:
                interval_kd += float(par.all_sum(kd_sum)) / accum
            if not math.isfinite(step_loss) or (gnorm is not None and not math.isfinite(gnorm)):
                res.diverged = True
                res.divergence = {"step": step, "tokens": res.tokens, "loss": step_loss,
                                  "grad_norm": gnorm, "lr": lr}
                break
            opt.step()
            opt.zero_grad(set_to_none=True)
            zero_masked([par.local(p) for p in mparams], mvals)  # what AdamW's moments and decay moved goes back to zero
            res.steps += 1
            res.tokens += recipe.batch_tokens
            interval_loss += step_loss
            interval_steps += 1
            res.train_s += time.perf_counter() - t0
            bar.advance(recipe.batch_tokens, f"loss {step_loss:.3f}")
            if step + 1 in checkpoints:
                ckpt = {"tokens": res.tokens, "step": res.steps, "train_loss": interval_loss / interval_steps,
                        "val_loss": None, "lr": lr, "train_s": res.train_s}
                if kd is not None:  # the KD term of the training loss (the held-out loss stays CE)
                    ckpt["train_kd"] = interval_kd / interval_steps
                if heldout is not None:
                    ckpt["val_loss"] = heldout_loss(base, heldout, eval_bs, recipe)
                    if not math.isfinite(ckpt["val_loss"]):
                        res.diverged = True
                        res.divergence = {"step": step, "tokens": res.tokens, "val_loss": ckpt["val_loss"], "lr": lr}
                if checkpoint_eval is not None and not res.diverged:
                    ckpt["extra"] = checkpoint_eval(base)
                    model.train()
                ckpt["wall_s"] = time.perf_counter() - t_start
                res.trajectory.append(ckpt)
                interval_loss, interval_kd, interval_steps = 0.0, 0.0, 0
                if res.diverged:
                    break
                if state is None:
                    par.save_state(model, opt, res)
                elif state.due(len(res.trajectory)) and res.steps < recipe.steps:  # the end needs no state
                    state.save(model, opt, par, res, epoch=epoch, cursor=cursor, rng=rng_snapshot(device),
                               wall_s=ckpt["wall_s"], ident=ident)
    bar.close()
    if kd is not None:
        kd.close()
    if recipe.grad_checkpointing:
        _checkpointing(base, False)
    opt.zero_grad(set_to_none=True)
    model.eval()
    res.wall_s = time.perf_counter() - t_start
    return res


# --------------------------------------------------------------------------- LoRA


def add_lora(model, recipe: Recipe):
    """Wrap `model` with LoRA adapters on every q/k/v/o/gate/up/down projection (peft)."""
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:
        raise UsageError("LoRA recovery needs the peft package: pip install 'prunebench[peft]'") from None
    config = LoraConfig(r=recipe.lora_r, lora_alpha=recipe.lora_alpha, lora_dropout=recipe.lora_dropout,
                        target_modules=list(LORA_TARGETS), bias="none", task_type="CAUSAL_LM")
    return get_peft_model(model, config)
