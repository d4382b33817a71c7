"""Result records: the typed form of one benchmark case's JSON record (schema ``prunebench.record/2``).

A record is parsed once, where it enters (`Record.from_json`: a file read back, a stored
baseline, a worker's result), into typed objects, and every reader (grouping runs for the law,
the gates, the report's tables) takes those objects: no chain of ``.get(...) or {}``. The
runner builds one from its parts. `Record.to_json` gives back exactly the document it was made
from: fields the code does not model stay in ``rest`` (a newer writer's additions, the
documents a record only carries: provenance, versions, the pruner's report), a field written as
null stays null, and one that was absent stays absent. So a record read and written again is
the same file.

Another schema is refused in one line (`RecordError`) that names the file and the fix: records
of schema 1 carry no provenance, which ``--resume`` needs, so they are re-run rather than
migrated. The type lives in `reports` (which imports nothing of the harness) because the
report renders from records and fit.json alone; `bench.sources.records` reads and writes the
files.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping

SCHEMA = "prunebench.record/2"
UNPRUNED = ("dense", "control")  # methods that keep the model as it is


class RecordError(ValueError):
    """A document that is not a record this prunebench reads; the message is one line."""


# --------------------------------------------------------------------------- the JSON machinery


@dataclass(frozen=True)
class _Codec:
    """How a field's JSON value becomes its typed value and back."""

    kind: type
    shape: str = "one"  # one | many (a list of objects) | by_key (an object of objects)

    def load(self, value, where: str):
        if value is None:
            return None
        if self.shape == "many":
            return tuple(self.kind.from_json(v, f"{where}[{i}]") for i, v in enumerate(value))
        if self.shape == "by_key":
            return {k: self.kind.from_json(v, f"{where}.{k}") for k, v in value.items()}
        return self.kind.from_json(value, where)

    def dump(self, value):
        if value is None:
            return None
        if self.shape == "many":
            return [v.to_json() for v in value]
        if self.shape == "by_key":
            return {k: v.to_json() for k, v in value.items()}
        return value.to_json()


@dataclass(frozen=True, kw_only=True)
class Doc:
    """A JSON object with typed fields (see the module docstring for the round-trip rules)."""

    rest: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    nulls: frozenset = field(default=frozenset(), repr=False, compare=False)

    NESTED: ClassVar[dict[str, _Codec]] = {}

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls) if f.name not in ("rest", "nulls")]

    @classmethod
    def from_json(cls, data, where: str = "record"):
        if not isinstance(data, Mapping):
            raise RecordError(f"{where} must be a JSON object, got {type(data).__name__}")
        names = cls.names()
        required = [f.name for f in dataclasses.fields(cls) if f.name in names
                    and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        missing = [k for k in required if k not in data]
        if missing:
            raise RecordError(f"{where} lacks {', '.join(repr(k) for k in missing)}")
        values = {k: (cls.NESTED[k].load(v, f"{where}.{k}") if k in cls.NESTED else v)
                  for k, v in data.items() if k in names}
        return cls(**values, rest={k: v for k, v in data.items() if k not in names},
                   nulls=frozenset(k for k in names if k in data and data[k] is None))

    def to_json(self) -> dict:
        out = dict(self.rest)
        for name in self.names():
            value = getattr(self, name)
            if value is None and name not in self.nulls:
                continue
            out[name] = self.NESTED[name].dump(value) if name in self.NESTED else value
        return out


# --------------------------------------------------------------------------- the parts


@dataclass(frozen=True, kw_only=True)
class ModelInfo(Doc):
    """The model a case measured: its spec, size key and family, and how it was loaded."""

    spec: str
    key: str | None = None
    family: str | None = None
    arch: str | None = None
    layers: int | None = None
    hidden_size: int | None = None
    non_embedding_params: int | None = None
    info: dict | None = None

    @property
    def title(self) -> str:
        """``nano-llama l2``: the family (else the spec) and the size key, for tables."""
        return f"{self.family or self.spec} {self.key or ''}".strip()


@dataclass(frozen=True, kw_only=True)
class Params(Doc):
    """Exact parameter counts before and after pruning."""

    before: int
    after: int
    achieved_ratio: float | None = None
    non_embedding_before: int | None = None
    non_embedding_after: int | None = None

    @property
    def remaining(self) -> float:
        return self.after / self.before


@dataclass(frozen=True, kw_only=True)
class Perplexity(Doc):
    """One perplexity measurement with its protocol (`bench.evaluation.perplexity.evaluate`)."""

    ppl: float
    nll: float | None = None
    tokens: int | None = None
    windows: int | None = None
    windows_total: int | None = None
    seq_len: int | None = None
    dataset: str | None = None
    split: str | None = None
    max_windows: int | None = None

    def cap(self) -> tuple[int, int, int, int] | None:
        """(windows, of windows, predicted tokens, of tokens) when only some windows were
        measured (a --max-windows cap); None for the full protocol."""
        if self.windows is None or self.windows_total is None or self.windows >= self.windows_total:
            return None
        seq = self.seq_len or 0
        tokens = self.tokens if self.tokens is not None else self.windows * (seq - 1)
        return self.windows, self.windows_total, tokens, self.windows_total * (seq - 1)


@dataclass(frozen=True, kw_only=True)
class Checkpoint(Doc):
    """One point of a post-training trajectory: tokens seen and the held-out loss there."""

    tokens: int
    val_loss: float | None = None
    train_loss: float | None = None  # the training objective, averaged over the interval
    train_kd: float | None = None  # its KD term, under a distillation objective
    step: int | None = None
    lr: float | None = None


@dataclass(frozen=True, kw_only=True)
class PostTrain(Doc):
    """What post-training recorded: the law's inputs (N0, N, rho, L0) and the trajectory."""

    trajectory: tuple[Checkpoint, ...] = ()
    L0: float | None = None
    N0: int | None = None
    N: int | None = None
    rho: float | None = None
    recipe: dict | None = None
    initial_val_loss: float | None = None  # the held-out loss right after pruning
    diverged: bool = False
    divergence: dict | None = None
    final_val_loss: float | None = None
    control_improvement: float | None = None
    # Why the run's objective differs from the declared recipe's (a control case under a
    # distillation recipe has no teacher and ran cross-entropy); None when it does not.
    objective_note: str | None = None

    NESTED: ClassVar = {"trajectory": _Codec(Checkpoint, "many")}

    @property
    def final(self) -> float | None:
        """The held-out loss at the last checkpoint (None: no checkpoint)."""
        return self.trajectory[-1].val_loss if self.trajectory else None


@dataclass(frozen=True, kw_only=True)
class ZeroShotRow(Doc):
    """One task and metric of an lm-eval run."""

    task: str
    metric: str
    value: float | str | None = None
    stderr: float | None = None
    samples: int | None = None
    samples_total: int | None = None
    lm_eval_version: str | None = None

    @property
    def capped(self) -> bool:
        return self.samples is not None and self.samples_total is not None and self.samples < self.samples_total


@dataclass(frozen=True, kw_only=True)
class ZeroShot(Doc):
    """An lm-eval run on one model (`bench.evaluation.zeroshot.evaluate`)."""

    results: tuple[ZeroShotRow, ...] = ()

    NESTED: ClassVar = {"results": _Codec(ZeroShotRow, "many")}

    def by_metric(self) -> dict[tuple[str, str], ZeroShotRow]:
        return {(r.task, r.metric): r for r in self.results}


# --------------------------------------------------------------------------- the record


@dataclass(frozen=True, kw_only=True)
class Record(Doc):
    """One case's result (see the module docstring)."""

    schema: str = SCHEMA
    case_id: str
    status: str
    method: str
    model: ModelInfo
    profile: str | None = None
    label: str | None = None
    ratio: float | None = None
    seed: int | None = None
    config: dict | None = None
    fingerprint: str | None = None
    params: Params | None = None
    prune_report: dict | None = None
    timings: dict | None = None
    ppl: dict[str, Perplexity] | None = None
    ppl_dense: dict[str, Perplexity] | None = None
    ppl_pruned: dict[str, Perplexity] | None = None
    posttrain: PostTrain | None = None
    zeroshot: ZeroShot | None = None
    zeroshot_pruned: ZeroShot | None = None
    provenance: dict | None = None
    created: str | None = None
    versions: dict | None = None
    machine: dict | None = None
    invocation: dict | None = None
    resume: dict | None = None

    NESTED: ClassVar = {"model": _Codec(ModelInfo), "params": _Codec(Params), "ppl": _Codec(Perplexity, "by_key"),
                        "ppl_dense": _Codec(Perplexity, "by_key"), "ppl_pruned": _Codec(Perplexity, "by_key"),
                        "posttrain": _Codec(PostTrain), "zeroshot": _Codec(ZeroShot),
                        "zeroshot_pruned": _Codec(ZeroShot)}

    @classmethod
    def from_json(cls, data, where: str = "record") -> "Record":
        """Parse a stored record; another schema, or a missing field, is a one-line `RecordError`."""
        found = data.get("schema") if isinstance(data, Mapping) else type(data).__name__
        if found != SCHEMA:
            raise RecordError(f"{where} has schema {found!r} but this prunebench reads {SCHEMA!r}; re-run the "
                              f"cases or use a matching prunebench version")
        return super().from_json(data, where)

    # ------------------------------------------------------------------ what readers ask

    @property
    def unpruned(self) -> bool:
        """A dense or control case: the model as it is."""
        return self.method in UNPRUNED

    @property
    def name(self) -> str:
        """The method part of the case id (``2of4-sparsegpt``), else the method."""
        return self.label or self.method

    @property
    def family(self) -> str:
        """The law's model family: the record's family, else its model spec."""
        return self.model.family or self.model.spec

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def ppl_before_posttrain(self) -> dict[str, Perplexity]:
        """Perplexities without post-training: `ppl_pruned` when the case post-trained, else `ppl`."""
        return self.ppl_pruned or self.ppl or {}

    def ppl_of(self, stage: str, key: str) -> float | None:
        """The perplexity `key` (``wikitext2:128``) at `stage` (ppl, ppl_dense or ppl_pruned)."""
        found = (getattr(self, stage) or {}).get(key)
        return None if found is None else found.ppl

    def recipe_config(self) -> dict:
        """The post-training recipe the case declared (its config), else the resolved one."""
        declared = (self.config or {}).get("posttrain")
        if declared is None:
            declared = self.posttrain.recipe if self.posttrain is not None else None
        return dict(declared or {})

    def zeroshot_stages(self) -> list[tuple[str, ZeroShot]]:
        """(stage, zero-shot run) pairs in order: before post-training, then after it."""
        first = "dense" if self.unpruned else "pruned"
        if self.zeroshot_pruned is not None:
            return [(first, self.zeroshot_pruned)] + ([("post-trained", self.zeroshot)] if self.zeroshot else [])
        return [(first, self.zeroshot)] if self.zeroshot is not None else []

    def curve(self) -> tuple[list[int], list[float]] | None:
        """(tokens, held-out loss) of a usable post-training trajectory: an ok, post-trained,
        not diverged record with at least one checkpoint; else None."""
        pt = self.posttrain
        if pt is None or not self.ok or pt.diverged or not pt.trajectory:
            return None
        return [c.tokens for c in pt.trajectory], [c.val_loss for c in pt.trajectory]
