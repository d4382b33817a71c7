"""Benchmark cases: one model x pruning method x ratio, with what to measure on it.

A case is a frozen value built once, when its study is read (`bench.studies.expand`), and it
carries every setting as the validated object the code runs with: the method's config, the
calibration draw, the post-training recipe, the perplexity measurements and the zero-shot
tasks. No later layer parses options again. Its id is what users select with
``pytest bench -k`` (``smol-dense-wikitext2-128``, ``nano-l2-depth-0.25``) and the file name
of its record; its `fingerprint` is what `--resume` compares against a stored record's.

A record's ``config`` shows what the study file declared, not the defaults filled in (so a
case's fingerprint changes only when its file does, and records of schema 2 keep theirs): the
case remembers which fields of each object the file set (`Declared`), and `config` reads their
values from the objects.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace

from bench.evaluation.zeroshot import ZeroShotSpec
from bench.sources.calibration import RECORD_KEYS, CalibrationSpec
from bench.training.recipe import Recipe

UNPRUNED = ("dense", "control")  # methods that keep the model as it is (ratio 0)


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
class Declared:
    """The fields of a case's method config, calibration and recipe that its study file set."""

    prune: tuple[str, ...] = ()
    calibration: tuple[str, ...] = ()
    recipe: tuple[str, ...] = ()


@dataclass(frozen=True)
class Case:
    """One benchmark case.

    Attributes:
        study: the study that defined it (the first part of its id; records call it ``profile``).
        model: model spec handed to `bench.sources.models.load_model`.
        model_key: short model label used in ids (``smol``, ``l2``).
        method: ``dense``, ``control`` or a pruning method registered in `bench.registry.METHODS`.
        ratio: target pruning ratio (fraction of parameters removed); 0 for dense/control.
        label: the method part of the id, e.g. ``blockwise-l2`` or ``2of4-sparsegpt``.
        prune: the method's config (`bench.registry.make_config`), None for dense/control.
        calibration: the calibration draw (`bench.sources.calibration.CalibrationSpec`), or None.
        recipe: the post-training recipe (`bench.training.recipe.Recipe`), or None for none.
        evals: perplexity measurements to take.
        zeroshot: lm-eval tasks to run on the model (`bench.evaluation.zeroshot.ZeroShotSpec`), or None;
            a post-trained case runs them before and after post-training.
        id_suffix: extra id part (the smol study puts dataset and seq_len there).
        family: model family for the scaling-law fit (``nano-llama``, ``smollm2``).
        declared: which fields of `prune`, `calibration` and `recipe` the study file set.
        seed: the study seed this case runs under, when the study has several (None: one seed,
            and the id, config and fingerprint are those of a study without seeds). A zoo
            model is its family drawn under the seed (`bench.training.zoo_families.seeded`); the
            post-training recipe runs with its seed offset by it (`training_recipe`).
    """

    study: str
    model: str
    model_key: str
    method: str
    ratio: float = 0.0
    label: str = ""
    prune: object | None = None
    calibration: CalibrationSpec | None = None
    recipe: Recipe | None = None
    evals: tuple[EvalSpec, ...] = ()
    zeroshot: ZeroShotSpec | None = None
    id_suffix: str = ""
    family: str = ""
    declared: Declared = Declared()
    seed: int | None = None

    def __hash__(self) -> int:
        # A plugin's method config need not be hashable; equal cases have equal ids.
        return hash(self.id)

    @property
    def id(self) -> str:
        parts = [self.study, self.model_key, self.label or self.method]
        if self.method not in UNPRUNED and not self.label.startswith("2of4"):
            parts.append(f"{self.ratio:g}")
        if self.id_suffix:
            parts.append(self.id_suffix)
        if self.seed is not None:
            parts.append(f"s{self.seed}")
        return "-".join(p for p in parts if p)

    @property
    def unpruned(self) -> bool:
        return self.method in UNPRUNED

    @property
    def training_recipe(self) -> Recipe | None:
        """The recipe post-training runs: the study's, its seed (data order, dropout, LoRA
        initialisation) offset by the case's study seed."""
        if self.recipe is None or not self.seed:
            return self.recipe
        return replace(self.recipe, seed=self.recipe.seed + self.seed)

    @property
    def prune_key(self) -> tuple:
        """Cases with equal keys share one pruned model within a session."""
        return (self.model, self.method, self.ratio, repr(self.prune), self.calibration)

    def config(self) -> dict:
        """What the study declared for this case, as plain JSON (a record's ``config``).

        The layout is schema 2's: the method's options and the calibration settings in one
        ``prune`` table (calibration keys as `bench.sources.calibration.RECORD_KEYS` spells
        them), the recipe's declared fields in ``posttrain``.
        """
        prune = {k: getattr(self.prune, k) for k in self.declared.prune}
        prune.update({RECORD_KEYS[k]: getattr(self.calibration, k) for k in self.declared.calibration})
        out = {"profile": self.study, "model": self.model, "model_key": self.model_key, "method": self.method,
               "ratio": self.ratio, "label": self.label, "prune": prune,
               "evals": [asdict(e) for e in self.evals],
               "posttrain": {k: getattr(self.recipe, k) for k in self.declared.recipe},
               "id_suffix": self.id_suffix, "family": self.family, "tags": []}
        if self.zeroshot is not None:
            # Absent rather than null, so cases without zero-shot keep their fingerprints.
            out["zeroshot"] = {**asdict(self.zeroshot), "task_limits": dict(self.zeroshot.task_limits)}
        if self.seed is not None:
            out["seed"] = self.seed  # absent with one seed, for the same reason
        return out

    def fingerprint(self) -> str:
        blob = json.dumps(self.config(), sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]
