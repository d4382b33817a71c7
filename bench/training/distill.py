"""Recovery by distillation: the pruned student learns its unpruned teacher's next-token distribution.

A recipe's ``objective`` (`bench.training.recipe.Recipe`) chooses the training loss:

* ``ce``: next-token cross-entropy, the P^2 paper's recipe (the trainer's own path, unchanged);
* ``kd``: KL(teacher ‖ student) of the two next-token distributions at ``temperature`` (scaled by
  T², so its gradients keep their size as T changes; Busbridge et al. advise T = 1);
* ``kd+ce``: ``kd_weight`` x KD + (1 - kd_weight) x CE.

Every term is a mean over the predicted positions of the micro-batch (position t predicts
token t + 1), as the cross-entropy is. The held-out loss at every checkpoint stays next-token
cross-entropy on the same windows under every objective (`bench.training.engine.heldout_loss`),
so L, L0 and the law mean the same under every recipe.

How the loss is computed (`Distillation`): the teacher, frozen and in eval mode, runs its
decoder under ``no_grad``; the student runs its own forward through whatever wraps it (DDP,
FSDP2, peft), told to compute no logits (``logits_to_keep`` empty), and a forward hook on the
student computes the loss inside that forward, from the two models' final hidden states and
their LM heads, chunk by chunk over positions. Each chunk's float32 logits (of both models) turn
into the loss and, in closed form, its gradients in the forward (`_ChunkedKD`) and are then
dropped, so neither model's full logits ever exist at once: for Llama-3's 128k vocabulary that is the difference between a
few MiB per chunk and 8 GB a batch. Computing inside the student's forward is what lets an
engine's hooks (DDP's gradient bookkeeping, FSDP2's gathering of the root's parameters, its LM
head among them) see the head as used. The student stays the plain model (its state, masks and
held-out loss are untouched), and the teacher is not part of any training state.
"""

from __future__ import annotations

import contextlib
from types import SimpleNamespace

import torch
import torch.nn.functional as F

OBJECTIVES = ("ce", "kd", "kd+ce")
CHUNK_ELEMENTS = 1 << 22  # float32 logits of one model per position chunk: 16 MiB


def causal_lm(model):
    """The transformers causal LM inside a peft wrapper (or the model itself)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


class _ChunkedKD(torch.autograd.Function):
    """The weighted loss ``a_kd KD + a_ce CE`` summed over position chunks, with its gradients.

    Each chunk's logits of both models are made once, in the forward, and the loss's gradient
    with respect to the student's logits is known in closed form there: T (p_s - p_t) for the KD
    term (p at temperature T) and softmax(z_s) - onehot for the CE term. So the forward also
    turns it into the gradients of the student's hidden states and head (two matrix products a
    chunk) and drops the logits; the backward only scales them. Recomputing the logits in the
    backward instead (activation checkpointing) made the student's head run twice and the
    teacher's head twice, which on a small model, where the vocabulary dominates, cost about a
    fifth of a KD step. The price, when the head trains (not under LoRA), is one float32 buffer
    the size of the student's head for its gradient (Llama-3-8B's 128k x 4096 head: 2 GiB), held
    from the forward to the backward; like activations, the memory estimate
    (`bench.harness.memory`) does not count it. The unweighted sums come back too, detached, for
    the trajectory.
    """

    @staticmethod
    def forward(ctx, h_s, w_s, b_s, h_t, w_t, b_t, targets, temperature: float, a_kd: float, a_ce: float,
                step: int):
        kd = torch.zeros((), device=h_s.device)
        ce = torch.zeros((), device=h_s.device)
        g_h = torch.zeros(h_s.shape, dtype=torch.float32, device=h_s.device)
        # A frozen head (LoRA) takes no gradient: no buffer, no product.
        g_w = torch.zeros(w_s.shape, dtype=torch.float32, device=w_s.device) if ctx.needs_input_grad[1] else None
        g_b = torch.zeros(b_s.shape, dtype=torch.float32, device=b_s.device) if ctx.needs_input_grad[2] else None
        w32 = w_s.float()  # once, not per chunk (a copy when the head is in bfloat16)
        for start in range(0, targets.shape[1], step):
            sl = slice(start, start + step)
            h = h_s[:, sl]
            z_s = F.linear(h, w_s, b_s).float()  # (B, c, V)
            z_t = F.linear(h_t[:, sl], w_t, b_t).float()
            logp_s = F.log_softmax(z_s / temperature if temperature != 1 else z_s, dim=-1)
            logp_t = F.log_softmax(z_t / temperature if temperature != 1 else z_t, dim=-1)
            p_t = logp_t.exp()
            kd += (p_t * (logp_t - logp_s)).sum() * temperature ** 2
            # The student's own (T = 1) distribution, for CE: at T = 1 the one above.
            logq = logp_s if temperature == 1 else F.log_softmax(z_s, dim=-1)
            tgt = targets[:, sl, None]
            ce -= logq.gather(-1, tgt).sum()
            # d KD / d z_s = T (p_s - p_t); d CE / d z_s = q - onehot (q = p_s at T = 1).
            g_z = torch.zeros_like(z_s) if not a_kd else (logp_s.exp() - p_t).mul_(a_kd * temperature)
            if a_ce:
                g_z.add_(logq.exp(), alpha=a_ce)
                g_z.scatter_add_(-1, tgt, torch.full(tgt.shape, -a_ce, dtype=g_z.dtype, device=g_z.device))
            g_h[:, sl] = g_z @ w32
            if g_w is not None:
                g_w += g_z.flatten(0, 1).T @ h.flatten(0, 1).float()
            if g_b is not None:
                g_b += g_z.sum((0, 1))
        ctx.save_for_backward(g_h, g_w, g_b)
        ctx.dtypes = (h_s.dtype, w_s.dtype, None if b_s is None else b_s.dtype)
        ctx.mark_non_differentiable(kd, ce)
        return a_kd * kd + a_ce * ce, kd, ce

    @staticmethod
    def backward(ctx, grad_loss, _grad_kd, _grad_ce):
        g_h, g_w, g_b = ctx.saved_tensors
        dt_h, dt_w, dt_b = ctx.dtypes
        return ((grad_loss * g_h).to(dt_h), None if g_w is None else (grad_loss * g_w).to(dt_w),
                None if g_b is None else (grad_loss * g_b).to(dt_b),
                None, None, None, None, None, None, None, None)


def kd_loss(h_s: torch.Tensor, head_s: torch.nn.Linear, h_t: torch.Tensor, head_t: torch.nn.Linear,
            ids: torch.Tensor, temperature: float = 1.0, kd_weight: float = 1.0) -> tuple[torch.Tensor, ...]:
    """The training loss ``kd_weight x KD + (1 - kd_weight) x CE`` and its two terms, as means
    over the predicted positions.

    Args:
        h_s, h_t: (B, S, H_s), (B, S, H_t) final (normed) hidden states of student and teacher.
        head_s, head_t: their LM heads (the same vocabulary).
        ids: (B, S) tokens; position t predicts ids[:, t + 1].
        kd_weight: 1 for the ``kd`` objective.
    Returns:
        (loss, KD, CE): float32 scalars; only the loss carries the student's graph (the
        teacher's head takes no gradient).
    """
    h_s, h_t, targets = h_s[:, :-1], h_t[:, :-1].to(h_s.device), ids[:, 1:].to(h_s.device)
    b, n = targets.shape
    step = max(1, CHUNK_ELEMENTS // max(1, b * head_s.weight.shape[0]))
    w_t = head_t.weight.detach().to(h_s.device)
    b_t = None if head_t.bias is None else head_t.bias.detach().to(h_s.device)
    loss, kd, ce = _ChunkedKD.apply(h_s, head_s.weight, head_s.bias, h_t, w_t, b_t, targets, float(temperature),
                                    float(kd_weight), 1.0 - float(kd_weight), step)
    return loss / (b * n), kd / (b * n), ce / (b * n)


class Distillation:
    """The distillation objective of one training run: the teacher, and the hook that computes
    the loss inside the student's forward (see the module docstring).

    Use: `inputs(x)` before each micro-batch's forward (the teacher runs there, and the call's
    keyword arguments come back), then `terms()` for the KD and CE parts of the loss just
    computed; `close()` (or a ``with`` block) removes the hooks.
    """

    def __init__(self, student, teacher, objective: str, temperature: float = 1.0, kd_weight: float = 1.0):
        if objective not in ("kd", "kd+ce"):
            raise ValueError(f"Distillation runs a KD objective, not {objective!r}")
        # Run under no_grad only: its parameters' flags are left alone, since the runner's teacher
        # is the memoised unpruned model that later cases copy and train.
        self.teacher = teacher.eval()
        self.objective, self.temperature, self.kd_weight = objective, float(temperature), float(kd_weight)
        lm = causal_lm(student)
        self.head = lm.get_output_embeddings()
        self.teacher_lm = causal_lm(teacher)
        self._teacher_hidden = None
        self._student_hidden = None
        self._ids = None  # set by `inputs` for the next forward only: any other forward (the
        self._terms = None  # held-out loss, which an engine may run through the root) is left alone
        self.handles = [lm.get_decoder().register_forward_hook(self._capture),
                        lm.register_forward_hook(self._loss)]

    def _capture(self, module, args, output):
        if self._ids is not None:
            self._student_hidden = output.last_hidden_state  # (B, S, H): the student's final normed states

    def _loss(self, module, args, output):
        ids, self._ids = self._ids, None
        if ids is None:
            return output
        weight = 1.0 if self.objective == "kd" else self.kd_weight
        loss, kd, ce = kd_loss(self._student_hidden, self.head, self._teacher_hidden,
                               self.teacher_lm.get_output_embeddings(), ids, self.temperature, weight)
        self._terms = SimpleNamespace(kd=kd.detach(), ce=ce.detach())
        self._student_hidden = self._teacher_hidden = None
        output.loss = loss
        return output

    @torch.no_grad()
    def inputs(self, x: torch.Tensor) -> dict:
        """Run the teacher on micro-batch `x`; the keyword arguments of the student's forward."""
        self._ids = x
        self._teacher_hidden = self.teacher_lm.get_decoder()(input_ids=x.to(self.teacher_device),
                                                             use_cache=False).last_hidden_state
        return {"input_ids": x, "use_cache": False, "logits_to_keep": torch.empty(0, dtype=torch.long, device=x.device)}

    @property
    def teacher_device(self) -> torch.device:
        return next(self.teacher.parameters()).device

    def terms(self) -> SimpleNamespace:
        """(kd, ce) of the last forward, detached."""
        return self._terms

    def close(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []

    def __enter__(self) -> "Distillation":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def distillation(student, teacher, recipe) -> contextlib.AbstractContextManager:
    """The recipe's distillation (None for ``ce`` or without a teacher), as a context manager."""
    if recipe.objective == "ce" or teacher is None:
        return contextlib.nullcontext(None)
    return Distillation(student, teacher, recipe.objective, recipe.temperature, recipe.kd_weight)
