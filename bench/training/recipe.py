"""The post-training recipe (DESIGN.md section 5): one validated dataclass per run.

Split from `bench.training.posttrain` (which re-exports every name here), so the loop, the training
state and the study-file schema can read a recipe without importing the loop.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass

from bench.training import corpus as corpus_mod
from bench.errors import UsageError, did_you_mean

SCHEDULES = ("constant", "cosine", "linear")
SPACINGS = ("linear", "log")  # of the checkpoints: `Recipe.checkpoints`
OBJECTIVES = ("ce", "kd", "kd+ce")  # the training loss: `Recipe.objective` (`bench.training.distill`)
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
        checkpoint_every: tokens between checkpoints (a multiple of batch_tokens), with
            ``checkpoints = "linear"``.
        checkpoints: ``linear`` (a checkpoint every `checkpoint_every` tokens) or ``log``
            (`checkpoint_count` checkpoints at log-spaced steps from the first optimizer step to
            the last, so the law's D axis spans the whole budget, tokens / batch_tokens, at no
            extra training cost). Left out of `to_dict` when linear.
        objective: the training loss (`bench.training.distill`): ``ce`` (next-token cross-entropy,
            the default), ``kd`` (KL(teacher ‖ student) at `temperature`) or ``kd+ce`` (`kd_weight`
            x KD + (1 - kd_weight) x CE). The held-out loss is next-token CE under every objective.
        temperature: the distillation temperature (> 0; the KL is scaled by its square).
        kd_weight: the KD term's weight under ``kd+ce``, in [0, 1].
        teacher: the teacher's model spec (same tokenizer); None: the case's unpruned model.
            objective, temperature, kd_weight and teacher are left out of `to_dict` at their
            defaults, so CE recipes keep their cache keys and fingerprints.
        checkpoint_count: the number of log-spaced checkpoints (``checkpoints = "log"`` only;
            at least 3, at most one per optimizer step). Left out of `to_dict` when unset.
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
        corpus: training corpus (`bench.training.corpus.CORPORA`: wikitext2, c4 or slimpajama).
        corpus_dir: slimpajama only: a directory of .jsonl/.jsonl.zst/.parquet files with a
            ``text`` field; None: ``$PRUNEBENCH_SLIMPAJAMA_DIR``, then the hub (online). Left out
            of `to_dict` when None, so existing recipes keep their cache keys.
        heldout_frac, posttrain_frac, slice_seed: how the corpus is cut (`bench.training.corpus.SliceSpec`).
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
        processes: train in this many processes on torch.distributed (`bench.training.distributed`): one per
            GPU on CUDA, or CPU processes over gloo. The global batch stays `batch_tokens`: each
            step's micro-batches are split across the processes, so the accumulation steps
            (batch_tokens / micro_batch_tokens) must be a multiple of processes.
        engine: ``ddp`` (every process holds the model) or ``fsdp`` (FSDP2 ``fully_shard`` on each
            decoder layer, then the root: parameters, gradients and AdamW state sharded).
        backend: ``auto`` (nccl on CUDA, gloo on CPU), ``nccl`` or ``gloo``.
        param_dtype: FSDP's all-gather dtype for the forward/backward (``float32`` or ``bfloat16``);
            master weights, gradient reduction and AdamW stay float32.
        state_every: save a resumable training state (`bench.training.train_state`) every this many
            checkpoints, so `--resume` continues a killed case from it; None (the default) saves
            none, because a state of a nano case costs more to write than the case does to rerun
            (and an 8B one is ~16 bytes a parameter). Left out of `to_dict` when None, so existing
            cases keep their fingerprints.
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
    state_every: int | None = None
    checkpoints: str = "linear"
    checkpoint_count: int | None = None
    objective: str = "ce"
    temperature: float = 1.0
    kd_weight: float = 0.5
    teacher: str | None = None

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
        if self.state_every is not None and (isinstance(self.state_every, bool) or not isinstance(self.state_every, int)
                                             or self.state_every < 1):
            raise UsageError(f"post-training state_every must be a positive integer (checkpoints between saved "
                             f"training states) or left out (no state saved), got {self.state_every!r}")
        if self.objective not in OBJECTIVES:
            raise UsageError(f"unknown post-training objective {self.objective!r}{did_you_mean(self.objective, OBJECTIVES)}; "
                             f"choose one of {', '.join(OBJECTIVES)}")
        if isinstance(self.temperature, bool) or not isinstance(self.temperature, (int, float)) or \
                not math.isfinite(self.temperature) or self.temperature <= 0:
            raise UsageError(f"the distillation temperature must be a number > 0, got {self.temperature!r}")
        if isinstance(self.kd_weight, bool) or not isinstance(self.kd_weight, (int, float)) or \
                not 0 <= self.kd_weight <= 1:
            raise UsageError(f"kd_weight (the KD term's share of the kd+ce loss) must be in [0, 1], got {self.kd_weight!r}")
        if self.teacher is not None and (not isinstance(self.teacher, str) or not self.teacher.strip()):
            raise UsageError(f"teacher must be a model spec (a string), got {self.teacher!r}")
        if self.teacher is not None and self.objective == "ce":
            raise UsageError(f"teacher {self.teacher!r} is only read by a distillation objective; set objective = "
                             f"\"kd\" or \"kd+ce\", or drop teacher")
        if self.checkpoints not in SPACINGS:
            raise UsageError(f"unknown checkpoint spacing {self.checkpoints!r}{did_you_mean(self.checkpoints, SPACINGS)}; "
                             f"choose one of {', '.join(SPACINGS)}")
        if self.checkpoints == "log":
            n = self.checkpoint_count
            if isinstance(n, bool) or not isinstance(n, int) or n < 3:
                raise UsageError(f"checkpoints = \"log\" needs checkpoint_count, at least 3 checkpoints to fit a "
                                 f"curve to, got {n!r}")
            if n > self.steps:
                raise UsageError(f"checkpoint_count = {n} asks for more checkpoints than the budget has optimizer "
                                 f"steps ({self.steps} = tokens {self.tokens:,} / batch_tokens {self.batch_tokens:,}); "
                                 f"lower checkpoint_count or raise tokens")
        elif self.checkpoint_count is not None:
            raise UsageError("checkpoint_count sets the log-spaced checkpoints; add checkpoints = \"log\" or drop it "
                             "(linear checkpoints are every checkpoint_every tokens)")
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
    def checkpoint_steps(self) -> tuple[int, ...]:
        """The optimizer steps (counted from 1) after which a checkpoint is recorded; the last is
        always the final step. Log spacing rounds a geometric sequence from step 1 to the last
        to whole steps, moving a step on where two would round together."""
        if self.checkpoints == "linear":
            every = self.checkpoint_every // self.batch_tokens
            return tuple(range(every, self.steps + 1, every))
        n, last = self.checkpoint_count, self.steps
        out: list[int] = []
        for i in range(n):
            step = round(last ** (i / (n - 1)))
            # Room for the checkpoints still to come, each a step apart.
            out.append(min(max(step, out[-1] + 1 if out else 1), last - (n - 1 - i)))
        return tuple(out)

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
        for key in ("corpus_dir", "state_every", "checkpoint_count"):  # absent when unset: old cases keep
            if d[key] is None:                                           # their fingerprints and zoo keys
                del d[key]
        if d["checkpoints"] == "linear":
            del d["checkpoints"]
        for key, default in (("objective", "ce"), ("temperature", 1.0), ("kd_weight", 0.5), ("teacher", None)):
            if d[key] == default:
                del d[key]
        return d

