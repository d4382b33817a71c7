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
their LM heads, chunk by chunk over positions. Each chunk's float32 logits (of both models) are
recomputed in the backward pass (activation checkpointing) rather than kept, so neither model's
full logits ever exist at once: for Llama-3's 128k vocabulary that is the difference between a
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
from torch.utils.checkpoint import checkpoint

OBJECTIVES = ("ce", "kd", "kd+ce")
CHUNK_ELEMENTS = 1 << 22  # float32 logits of one model per position chunk: 16 MiB


def causal_lm(model):
    """The transformers causal LM inside a peft wrapper (or the model itself)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def _chunk_terms(h_s, h_t, targets, w_s, b_s, w_t, b_t, temperature: float):
    """KD and CE sums of one position chunk: (B, c, H) hidden states -> two float32 scalars."""
    logits_s = F.linear(h_s, w_s, b_s).float()  # (B, c, V)
    logits_t = F.linear(h_t, w_t, b_t).float()
    logp_s = F.log_softmax(logits_s / temperature, dim=-1)
    logp_t = F.log_softmax(logits_t / temperature, dim=-1)
    kd = (logp_t.exp() * (logp_t - logp_s)).sum() * temperature ** 2
    lse = torch.logsumexp(logits_s, dim=-1)  # the CE of the student's own (T = 1) distribution
    ce = (lse - logits_s.gather(-1, targets[..., None]).squeeze(-1)).sum()
    return kd, ce


def kd_terms(h_s: torch.Tensor, head_s: torch.nn.Linear, h_t: torch.Tensor, head_t: torch.nn.Linear,
             ids: torch.Tensor, temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean KL(teacher ‖ student) (x T²) and mean student CE over the predicted positions.

    Args:
        h_s, h_t: (B, S, H_s), (B, S, H_t) final (normed) hidden states of student and teacher.
        head_s, head_t: their LM heads (the same vocabulary).
        ids: (B, S) tokens; position t predicts ids[:, t + 1].
    Returns:
        Two float32 scalars with the student's graph: (KD, CE).
    """
    h_s, h_t, targets = h_s[:, :-1], h_t[:, :-1].to(h_s.device), ids[:, 1:].to(h_s.device)
    b, n = targets.shape
    step = max(1, CHUNK_ELEMENTS // max(1, b * head_s.weight.shape[0]))
    kd = ce = torch.zeros((), device=h_s.device)
    # Detached: the teacher's head takes no gradient (its flags are left alone, see `Distillation`).
    w_t = head_t.weight.detach().to(h_s.device)
    b_t = None if head_t.bias is None else head_t.bias.detach().to(h_s.device)
    for start in range(0, n, step):
        sl = slice(start, start + step)
        # Recomputed in backward: only this chunk's hidden states are kept, never its logits.
        k, c = checkpoint(_chunk_terms, h_s[:, sl], h_t[:, sl], targets[:, sl], head_s.weight, head_s.bias,
                          w_t, b_t, temperature, use_reentrant=False)
        kd, ce = kd + k, ce + c
    return kd / (b * n), ce / (b * n)


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
        kd, ce = kd_terms(self._student_hidden, self.head, self._teacher_hidden,
                          self.teacher_lm.get_output_embeddings(), ids, self.temperature)
        loss = kd if self.objective == "kd" else self.kd_weight * kd + (1 - self.kd_weight) * ce
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
