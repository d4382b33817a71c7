"""Post-training: continual pre-training with a loss trajectory (DESIGN.md section 5).

`posttrain(model, tokenizer, recipe)` trains every parameter (or LoRA adapters) of a model on the
post-training slice of a corpus (`bench.corpus`) with AdamW, and records a checkpoint every
`recipe.checkpoint_every` tokens: tokens seen, training loss averaged over the interval, held-out
loss on a fixed prefix of the held-out slice (the same windows for every case), learning rate
and wall time. The same loop (`train`) pre-trains the nano zoo.

Token accounting: a step consumes `batch_tokens` input tokens (sequences x seq_len), split into
micro-batches of `micro_batch_tokens` whose gradients accumulate; "tokens seen" counts input
tokens, so checkpoint k sits at exactly k x checkpoint_every.

N:M masks (2:4) are kept: the gradients of pruned weights are zeroed before each step and the
masks re-applied after it, so pruned weights are exactly zero at every checkpoint (paper Eq. 4).

A NaN or inf loss (or gradient norm) stops training; the result carries the trajectory so far
and ``diverged=True``, and the benchmark keeps it in the record with status ``diverged``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import sys
import time
from dataclasses import asdict, dataclass, field

import torch

from bench import corpus as corpus_mod
from bench.errors import UsageError, did_you_mean

SCHEDULES = ("constant", "cosine", "linear")
ENGINES = ("ddp", "fsdp")
BACKENDS = ("auto", "gloo", "nccl")
PARAM_DTYPES = ("float32", "bfloat16")
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class Diverged(UsageError):
    """Training produced a NaN or inf loss; the message says where and what to change."""


@dataclass(frozen=True)
class Recipe:
    """A (post-)training recipe. Token counts are input tokens: sequences x seq_len.

    Attributes:
        tokens: total training budget D.
        checkpoint_every: tokens between checkpoints (a multiple of batch_tokens).
        batch_tokens: tokens per optimizer step.
        micro_batch_tokens: tokens per forward/backward; gradients accumulate to batch_tokens.
        seq_len: tokens per training sequence.
        lr: peak learning rate; 0 runs the loop without changing a weight (a null run: its
            checkpoints equal L0, which checks the measurement path).
        schedule: constant, cosine or linear decay after warm-up.
        warmup_tokens: linear warm-up from 0 over this many tokens.
        min_lr_ratio: where cosine/linear decay ends, as a fraction of lr.
        weight_decay: AdamW decoupled weight decay (not applied to norms and biases).
        beta1, beta2, eps: AdamW.
        grad_clip: clip the global gradient norm to this (0 disables).
        corpus: training corpus (`bench.corpus.CORPORA`: wikitext2, c4 or slimpajama).
        corpus_dir: slimpajama only: a directory of .jsonl/.jsonl.zst/.parquet files with a
            ``text`` field; None: ``$PRUNEBENCH_SLIMPAJAMA_DIR``, then the hub (online). Left out
            of `to_dict` when None, so existing recipes keep their cache keys.
        heldout_frac, posttrain_frac, slice_seed: how the corpus is cut (`bench.corpus.SliceSpec`).
        train_slice: which slice to train on: ``posttrain`` (documents no base saw) or
            ``pretrain`` (continue on the bases' own corpus; the zoo pre-trains on it).
        max_documents: train on the first this many documents of the slice only (None: all);
            keeps tiny CI models from tokenising the whole corpus.
        repeat: allow more than one pass over the slice (reshuffled each pass); post-training
            refuses a budget larger than its slice instead.
        eval_windows: held-out windows (of seq_len tokens) measured at each checkpoint.
        lora: train LoRA adapters (r, alpha, dropout below) on all q/k/v/o/gate/up/down instead
            of every parameter; merged into the weights at the end.
        bf16: bf16 autocast on CUDA (CPU always trains in float32).
        grad_checkpointing: recompute activations in the backward pass (saves memory).
        ppl_at_checkpoints: also measure WikiText2/PTB perplexity at every checkpoint.
        seed: data order and dropout.
        processes: train in this many processes on torch.distributed (`bench.distributed`): one per
            GPU on CUDA, or CPU processes over gloo. The global batch stays `batch_tokens`: each
            step's micro-batches are split across the processes, so the accumulation steps
            (batch_tokens / micro_batch_tokens) must be a multiple of processes.
        engine: ``ddp`` (every process holds the model) or ``fsdp`` (FSDP2 ``fully_shard`` on each
            decoder layer, then the root: parameters, gradients and AdamW state sharded).
        backend: ``auto`` (nccl on CUDA, gloo on CPU), ``nccl`` or ``gloo``.
        param_dtype: FSDP's all-gather dtype for the forward/backward (``float32`` or ``bfloat16``);
            master weights, gradient reduction and AdamW stay float32.
    """

    tokens: int = 131072
    checkpoint_every: int = 16384
    batch_tokens: int = 4096
    micro_batch_tokens: int = 4096
    seq_len: int = 128
    lr: float = 3e-4
    schedule: str = "constant"
    warmup_tokens: int = 0
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    grad_clip: float = 1.0
    corpus: str = "wikitext2"
    heldout_frac: float = 0.04
    posttrain_frac: float = 0.10
    slice_seed: int = 0
    train_slice: str = "posttrain"
    max_documents: int | None = None
    repeat: bool = False
    eval_windows: int = 64
    lora: bool = False
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    bf16: bool = True
    grad_checkpointing: bool = False
    ppl_at_checkpoints: bool = False
    seed: int = 0
    processes: int = 1
    engine: str = "ddp"
    backend: str = "auto"
    param_dtype: str = "float32"
    corpus_dir: str | None = None

    def __post_init__(self):
        corpus_mod.check_corpus(self.corpus)
        for name in ("tokens", "checkpoint_every", "batch_tokens", "micro_batch_tokens", "seq_len",
                     "eval_windows", "lora_r"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise UsageError(f"post-training {name} must be a positive integer, got {v!r}")
        if self.seq_len < 2:
            raise UsageError(f"post-training seq_len must be at least 2, got {self.seq_len}")
        if self.tokens < self.checkpoint_every:
            raise UsageError(
                f"post-training budget of {self.tokens:,} tokens is smaller than one checkpoint interval "
                f"({self.checkpoint_every:,} tokens), so no checkpoint would be recorded; raise tokens or "
                f"lower checkpoint_every")
        if self.batch_tokens % self.seq_len or self.micro_batch_tokens % self.seq_len:
            raise UsageError(f"batch_tokens ({self.batch_tokens}) and micro_batch_tokens ({self.micro_batch_tokens}) "
                             f"must be multiples of seq_len ({self.seq_len})")
        if self.batch_tokens % self.micro_batch_tokens:
            raise UsageError(f"batch_tokens ({self.batch_tokens}) must be a multiple of micro_batch_tokens "
                             f"({self.micro_batch_tokens}): gradient accumulation takes whole micro-batches")
        if self.checkpoint_every % self.batch_tokens:
            raise UsageError(f"checkpoint_every ({self.checkpoint_every}) must be a multiple of batch_tokens "
                             f"({self.batch_tokens}): checkpoints fall between optimizer steps")
        if self.tokens % self.checkpoint_every:
            raise UsageError(f"post-training tokens ({self.tokens}) must be a multiple of checkpoint_every "
                             f"({self.checkpoint_every}), so the last checkpoint is at the end of training")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr >= 0):
            raise UsageError(f"post-training lr must be a number >= 0 (0: a null run that changes no weight), "
                             f"got {self.lr!r}")
        if self.schedule not in SCHEDULES:
            raise UsageError(f"unknown lr schedule {self.schedule!r}{did_you_mean(self.schedule, SCHEDULES)}; "
                             f"choose one of {', '.join(SCHEDULES)}")
        if not 0 <= self.warmup_tokens <= self.tokens:
            raise UsageError(f"warmup_tokens must be in [0, tokens], got {self.warmup_tokens}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise UsageError(f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        if self.grad_clip < 0 or self.weight_decay < 0:
            raise UsageError("grad_clip and weight_decay must be >= 0")
        if self.max_documents is not None and (isinstance(self.max_documents, bool) or self.max_documents < 1):
            raise UsageError(f"max_documents must be a positive integer or None, got {self.max_documents!r}")
        if self.train_slice not in ("pretrain", "posttrain"):
            raise UsageError(f"train_slice must be pretrain or posttrain, got {self.train_slice!r}"
                             f"{did_you_mean(self.train_slice, ('pretrain', 'posttrain'))}")
        if isinstance(self.processes, bool) or not isinstance(self.processes, int) or self.processes < 1:
            raise UsageError(f"post-training processes must be a positive integer, got {self.processes!r}")
        if self.engine not in ENGINES:
            raise UsageError(f"unknown post-training engine {self.engine!r}{did_you_mean(self.engine, ENGINES)}; "
                             f"choose one of {', '.join(ENGINES)}")
        if self.backend not in BACKENDS:
            raise UsageError(f"unknown distributed backend {self.backend!r}{did_you_mean(self.backend, BACKENDS)}; "
                             f"choose one of {', '.join(BACKENDS)}")
        if self.param_dtype not in PARAM_DTYPES:
            hint = (" (fp16 needs loss scaling, which the post-training loop does not do; use bfloat16)"
                    if self.param_dtype in ("float16", "fp16") else did_you_mean(self.param_dtype, PARAM_DTYPES))
            raise UsageError(f"param_dtype {self.param_dtype!r} is not supported{hint}; choose one of "
                             f"{', '.join(PARAM_DTYPES)}")
        if self.param_dtype != "float32" and self.engine != "fsdp":
            raise UsageError(f"param_dtype={self.param_dtype} is an FSDP option; set engine='fsdp' or leave "
                             f"param_dtype at float32")
        if self.accumulation % self.processes:
            raise UsageError(
                f"{self.processes} processes cannot split a step of {self.accumulation} micro-batches "
                f"(batch_tokens {self.batch_tokens} / micro_batch_tokens {self.micro_batch_tokens}) evenly; "
                f"choose micro_batch_tokens so that count is a multiple of {self.processes}")
        if self.processes > 1 and self.lora:
            raise UsageError("LoRA recovery runs in one process; set processes=1 or lora=False")
        if self.processes > 1 and self.ppl_at_checkpoints:
            raise UsageError("ppl_at_checkpoints runs in one process; set processes=1 or ppl_at_checkpoints=False")
        self.slices  # validates the cut

    @classmethod
    def from_options(cls, options: dict) -> "Recipe":
        """Build from a case's option dict; an unknown key is a UsageError naming the known ones."""
        known = {f.name for f in dataclasses.fields(cls)}
        for key in options:
            if key not in known:
                raise UsageError(f"unknown post-training option {key!r}{did_you_mean(key, known)}; "
                                 f"options are {', '.join(sorted(known))}")
        return cls(**options)

    @property
    def slices(self) -> corpus_mod.SliceSpec:
        return corpus_mod.SliceSpec(self.corpus, self.heldout_frac, self.posttrain_frac, self.slice_seed,
                                    self.corpus_dir)

    @property
    def steps(self) -> int:
        return self.tokens // self.batch_tokens

    @property
    def accumulation(self) -> int:
        return self.batch_tokens // self.micro_batch_tokens

    @property
    def eval_batch_size(self) -> int:
        """Held-out windows per forward: about 8k tokens."""
        return max(1, 8192 // self.seq_len)

    def lr_at(self, step: int) -> float:
        """Learning rate of optimizer step `step` (0-based)."""
        warm = self.warmup_tokens // self.batch_tokens
        if step < warm:
            return self.lr * (step + 1) / warm
        if self.schedule == "constant":
            return self.lr
        progress = (step - warm) / max(1, self.steps - warm - 1)
        lo = self.lr * self.min_lr_ratio
        if self.schedule == "cosine":
            return lo + (self.lr - lo) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
        return self.lr - (self.lr - lo) * min(progress, 1.0)

    def to_dict(self) -> dict:
        d = asdict(self)
        if d["corpus_dir"] is None:
            del d["corpus_dir"]
        return d


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
    and `bench.perplexity.window_nll_sum` (the chunked loss). L0 before training and the loss
    at every checkpoint both come from here, on every device.
    """
    from bench.perplexity import window_nll_sum

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


def _mask_pairs(model, masks: dict | None) -> tuple[list, list]:
    """(params, float masks) for the masked weights, masks already on the params' device/dtype."""
    if not masks:
        return [], []
    named = dict(model.named_parameters())
    missing = sorted(set(masks) - set(named))
    if missing:
        raise ValueError(f"masks name parameters the model does not have, e.g. {missing[0]!r}")
    params = [named[n] for n in masks]
    return params, [masks[n].to(device=p.device, dtype=p.dtype) for n, p in zip(masks, params)]


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
    through one of these methods, and `bench.distributed` overrides them for DDP and FSDP2.
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

    def save_state(self, model, optimizer, result: "TrainResult") -> None:
        """Called at each checkpoint; the distributed engines save sharded resumable state."""


def _order(n: int, epoch: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g)


def train(model, windows: torch.Tensor, recipe: Recipe, *, heldout: torch.Tensor | None = None,
          masks: dict | None = None, checkpoint_eval=None, progress: bool = False,
          desc: str = "post-train", parallel: SingleProcess | None = None) -> TrainResult:
    """Train `model` in place on `windows` (n, seq_len) as `recipe` says.

    Args:
        heldout: (n_val, seq_len) windows measured at each checkpoint (None: no held-out loss).
        masks: parameter name -> keep-mask (True = kept); masked weights stay exactly zero.
        checkpoint_eval: optional ``fn(model) -> dict`` stored under ``extra`` at each checkpoint.
        parallel: how processes share the work (default: one process). Every process walks the
            same data order; micro-batch k of a step runs on rank k mod world, so the global
            batch and the trajectory are those of one process.
    Returns:
        The trajectory and counters; ``diverged`` is set (and training stopped) on a NaN/inf.
    """
    from tqdm.auto import tqdm

    if windows.dim() != 2 or windows.shape[1] != recipe.seq_len:
        raise ValueError(f"windows must be (n, {recipe.seq_len}), got {tuple(windows.shape)}")
    mb = recipe.micro_batch_tokens // recipe.seq_len  # sequences per micro-batch
    accum = recipe.accumulation
    per_ckpt = recipe.checkpoint_every // recipe.batch_tokens
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
    model = par.wrap(model)  # FSDP moves each shard to its rank's device as it shards
    base = par.inner(model)
    device = _device(base)
    params = [p for p in base.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(_param_groups(base, recipe.weight_decay), lr=recipe.lr,
                            betas=(recipe.beta1, recipe.beta2), eps=recipe.eps)
    mparams, mvals = _mask_pairs(base, masks)
    mvals = [par.shard_like(m, p) for p, m in zip(mparams, mvals)]
    if mparams:
        with torch.no_grad():
            torch._foreach_mul_([par.local(p) for p in mparams], mvals)  # start from the exact pattern

    t_start = time.perf_counter()
    if heldout is not None:
        res.initial_val_loss = heldout_loss(base, heldout, eval_bs, recipe)
    model.train()
    order, epoch, cursor = _order(windows.shape[0], 0, recipe.seed), 0, 0
    interval_loss, interval_steps = 0.0, 0
    bar = tqdm(total=recipe.steps, desc=desc, unit="step", file=sys.stderr, disable=not progress or par.rank != 0,
               leave=False)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(recipe.seed)
        for step in range(recipe.steps):
            t0 = time.perf_counter()
            lr = recipe.lr_at(step)
            for group in opt.param_groups:
                group["lr"] = lr
            loss_sum = torch.zeros((), device=device)
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
                        loss = model(input_ids=x, labels=x, use_cache=False).loss
                    (loss / local_accum).backward()  # the engines average over processes
                loss_sum += loss.detach().float()
            if mparams:
                pairs = [(par.local(p.grad), m) for p, m in zip(mparams, mvals) if p.grad is not None]
                if pairs:
                    torch._foreach_mul_([g for g, _ in pairs], [m for _, m in pairs])
            gnorm = torch.nn.utils.clip_grad_norm_(params, recipe.grad_clip) if recipe.grad_clip > 0 else None
            gnorm = None if gnorm is None else par.scalar(gnorm)
            step_loss = float(par.all_sum(loss_sum)) / accum  # the one host sync per step
            if not math.isfinite(step_loss) or (gnorm is not None and not math.isfinite(gnorm)):
                res.diverged = True
                res.divergence = {"step": step, "tokens": res.tokens, "loss": step_loss,
                                  "grad_norm": gnorm, "lr": lr}
                break
            opt.step()
            opt.zero_grad(set_to_none=True)
            if mparams:
                with torch.no_grad():
                    torch._foreach_mul_([par.local(p) for p in mparams], mvals)
            res.steps += 1
            res.tokens += recipe.batch_tokens
            interval_loss += step_loss
            interval_steps += 1
            res.train_s += time.perf_counter() - t0
            bar.update(1)
            if (step + 1) % per_ckpt == 0:
                ckpt = {"tokens": res.tokens, "step": res.steps, "train_loss": interval_loss / interval_steps,
                        "val_loss": None, "lr": lr, "train_s": res.train_s}
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
                interval_loss, interval_steps = 0.0, 0
                if res.diverged:
                    break
                par.save_state(model, opt, res)
    bar.close()
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


# --------------------------------------------------------------------------- the case-level entry


def training_windows(tokenizer, recipe: Recipe, data_dir=None) -> torch.Tensor:
    """(n, seq_len) windows of the recipe's training slice."""
    stream = corpus_mod.token_stream(tokenizer, recipe.slices, recipe.train_slice, data_dir, recipe.max_documents)
    return corpus_mod.windows(stream, recipe.seq_len)


def heldout_windows(tokenizer, recipe: Recipe, data_dir=None) -> torch.Tensor:
    """The fixed held-out windows: the first `eval_windows` of the held-out slice."""
    stream = corpus_mod.token_stream(tokenizer, recipe.slices, "heldout", data_dir)
    win = corpus_mod.windows(stream, recipe.seq_len)
    if win.shape[0] < recipe.eval_windows:
        raise UsageError(f"the held-out slice has only {win.shape[0]} windows of {recipe.seq_len} tokens, fewer "
                         f"than eval_windows={recipe.eval_windows}; lower eval_windows or raise heldout_frac")
    return win[: recipe.eval_windows]


def initial_loss(model, tokenizer, recipe: Recipe, data_dir=None) -> float:
    """L0: `model`'s held-out loss on the recipe's fixed windows, measured as every checkpoint is."""
    return heldout_loss(model, heldout_windows(tokenizer, recipe, data_dir), recipe.eval_batch_size, recipe)


def posttrain(model, tokenizer, recipe: Recipe, *, data_dir=None, masks: dict | None = None,
              checkpoint_eval=None, progress: bool = False, state_dir=None) -> tuple[torch.nn.Module, dict]:
    """Post-train `model` (in place, except LoRA which returns the merged model).

    With ``recipe.processes > 1`` the training runs in spawned processes (`bench.distributed`),
    which is checked against the machine before any data is read.

    Args:
        masks: N:M keep-masks to preserve (from the pruning report); refused with LoRA, whose
            dense low-rank update would break the pattern.
        state_dir: distributed runs only: where each checkpoint's sharded state is saved.
    Returns:
        (the trained model, the record's ``posttrain`` fields: recipe, slices, trajectory,
        initial held-out loss, diverged, counters).
    """
    if masks and recipe.lora:
        raise UsageError("LoRA recovery cannot keep an N:M mask (its low-rank update is dense); use full "
                         "post-training (lora=False) for 2:4 cases")
    if recipe.processes > 1:
        from bench import distributed

        backend = distributed.resolve_backend(recipe, _device(model))  # bad input fails before any work
    win = training_windows(tokenizer, recipe, data_dir)
    held = heldout_windows(tokenizer, recipe, data_dir)
    dtype = next(model.parameters()).dtype
    home = _device(model)
    if recipe.processes > 1:
        model.to("cpu")  # the ranks get their copies from here; the parent keeps no GPU memory
    if dtype != MASTER_DTYPE:
        model.to(MASTER_DTYPE)  # float32 master weights; bf16 comes from autocast on CUDA
    if recipe.lora:
        model = add_lora(model, recipe)
    if recipe.processes > 1:
        result = distributed.run(model, win, recipe, heldout=held, masks=masks, state_dir=state_dir,
                                 progress=progress, device=home)
    else:
        result = train(model, win, recipe, heldout=held, masks=masks, checkpoint_eval=checkpoint_eval,
                       progress=progress)
    if recipe.lora:
        model = model.merge_and_unload()
    model.to(device=home, dtype=dtype)
    out = {"recipe": recipe.to_dict(), "slices": corpus_mod.slice_info(recipe.slices, data_dir),
           "eval_tokens": int(held.numel()), **result.to_dict()}
    if recipe.processes > 1:
        out["distributed"] = {"processes": recipe.processes, "engine": recipe.engine, "backend": backend,
                              "param_dtype": recipe.param_dtype,
                              "sharded_state": None if state_dir is None else str(state_dir)}
    return model.eval(), out
