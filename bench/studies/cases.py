"""Benchmark cases: one model x pruning method x ratio, with what to measure on it.

A case is a frozen, hashable value. Its id is what users select with ``pytest bench -k``
(``smol-dense-wikitext2-128``, ``nano-l2-depth-0.25``) and the file name of its record, and
its `fingerprint` is what `--resume` compares against a stored record's config.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

from bench.evaluation.zeroshot import ZeroShotSpec


@dataclass(frozen=True)
class EvalSpec:
    """One perplexity measurement: dataset, sequence length and window cap (None = all)."""

    dataset: str
    seq_len: int
    max_windows: int | None = None

    @property
    def key(self) -> str:
        return f"{self.dataset}:{self.seq_len}"


@dataclass(frozen=True)
class Case:
    """One benchmark case.

    Attributes:
        profile: the profile that defined it.
        model: model spec handed to `bench.sources.models.load_model`.
        model_key: short model label used in ids (``smol``, ``l2``).
        method: ``dense``, ``control`` or a pruning method registered in `pruners`.
        ratio: target pruning ratio (fraction of parameters removed); 0 for dense/control.
        label: the method part of the id, e.g. ``blockwise-l2`` or ``2of4-sparsegpt``.
        prune: method options as sorted (key, value) pairs, so the case stays hashable.
        evals: perplexity measurements to take.
        posttrain: post-training recipe as sorted pairs, or empty for none.
        id_suffix: extra id part (the smol profile puts dataset and seq_len there).
        family: model family for the scaling-law fit (``nano-llama``, ``smollm2``).
        zeroshot: lm-eval tasks to run on the model (`bench.evaluation.zeroshot.ZeroShotSpec`), or None;
            a post-trained case runs them before and after post-training.
    """

    profile: str
    model: str
    model_key: str
    method: str
    ratio: float = 0.0
    label: str = ""
    prune: tuple = ()
    evals: tuple[EvalSpec, ...] = ()
    posttrain: tuple = ()
    id_suffix: str = ""
    family: str = ""
    tags: tuple[str, ...] = field(default=())
    zeroshot: ZeroShotSpec | None = None

    @property
    def id(self) -> str:
        parts = [self.profile, self.model_key, self.label or self.method]
        if self.method not in ("dense", "control") and not self.label.startswith("2of4"):
            parts.append(f"{self.ratio:g}")
        if self.id_suffix:
            parts.append(self.id_suffix)
        return "-".join(p for p in parts if p)

    @property
    def prune_options(self) -> dict:
        return dict(self.prune)

    @property
    def posttrain_options(self) -> dict:
        return dict(self.posttrain)

    @property
    def prune_key(self) -> tuple:
        """Cases with equal keys share one pruned model within a session."""
        return (self.model, self.method, self.ratio, self.prune)

    def config(self) -> dict:
        """Everything that determines the case's result, as plain JSON."""
        d = asdict(self)
        d["prune"] = dict(self.prune)
        d["posttrain"] = dict(self.posttrain)
        d["evals"] = [asdict(e) for e in self.evals]
        if self.zeroshot is None:
            # Absent rather than null, so cases without zero-shot keep their fingerprints.
            del d["zeroshot"]
        else:
            d["zeroshot"]["task_limits"] = dict(self.zeroshot.task_limits)
        return d

    def fingerprint(self) -> str:
        blob = json.dumps(self.config(), sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def opts(**kwargs) -> tuple:
    """Method or recipe options as a hashable, order-independent tuple."""
    return tuple(sorted(kwargs.items()))
