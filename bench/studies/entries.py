"""A validated study: the dataclasses `bench.studies.expand` reads, and the keys of each table.

`bench.studies.schema` builds a `Study` from a file; every value in it has been checked and
built into the object the code runs with (a method's config for each model and ratio, the
calibration spec, each model's recipe, the zero-shot spec, the gates), once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bench.evaluation.zeroshot import ZeroShotSpec
from bench.sources.calibration import CalibrationSpec
from bench.studies.cases import UNPRUNED
from bench.studies.gates import GateSet
from bench.training.recipe import Recipe

TOP_KEYS = ("include", "study", "models", "methods", "calibration", "posttrain", "evaluation", "zeroshot", "gates")
STUDY_KEYS = ("name", "description", "law", "holdout", "seeds")
MODEL_KEYS = ("spec", "key", "family", "zoo", "posttrain", "options", "revision")
METHOD_KEYS = ("method", "label", "ratios", "options", "calibration")
CALIB_KEYS = ("source", "samples", "seq_len", "seed")
EVAL_KEYS = ("datasets", "seq_lens", "max_windows", "per_case")
ZEROSHOT_KEYS = ("tasks", "limit", "limits", "max_length", "batch_size", "bootstrap_iters")


@dataclass(frozen=True)
class ModelEntry:
    """One model of a study (a zoo entry expands to one per size), with its recipe built."""

    spec: str
    key: str
    family: str
    zoo: bool = False  # a size of a nano zoo family (its spec changes with the study seed)
    recipe: Recipe | None = None  # the study's [posttrain] with this model's overrides; None: no post-training
    recipe_keys: tuple[str, ...] = ()  # the recipe fields the study file set
    options: tuple = ()  # (method, sorted (key, value) overrides) pairs, as the file gives them
    where: str = ""  # "models[2]", for messages

    def options_for(self, method: str) -> dict:
        return dict(dict(self.options).get(method, ()))


@dataclass(frozen=True)
class MethodEntry:
    """One row of the method axis: a method, its label, calibration and ratios, and the method's
    config for every (model, ratio) it runs on, each built once when the study is read."""

    method: str
    label: str
    calibration: CalibrationSpec | None = None
    calibration_keys: tuple[str, ...] = ()  # the calibration fields the study file set
    ratios: tuple = ()  # ratios for every model, or () when `ratios_by_model` is set
    ratios_by_model: tuple = ()  # (model key, ratios) pairs
    configs: tuple = ()  # (model key, ratio, config, the option keys the file set)
    where: str = ""

    def ratios_for(self, model_key: str) -> tuple:
        """The ratios this method runs on a model (() when it skips the model)."""
        if self.method in UNPRUNED:
            return (0.0,)
        if self.ratios_by_model:
            return dict(self.ratios_by_model).get(model_key, ())
        return self.ratios

    def config_for(self, model_key: str, ratio: float) -> tuple[object | None, tuple[str, ...]]:
        """(the method's config, its declared option keys) on a model at a ratio; (None, ()) unpruned."""
        for key, r, config, keys in self.configs:
            if key == model_key and r == ratio:
                return config, keys
        return None, ()


@dataclass(frozen=True)
class Evaluation:
    """Perplexity measurements: every dataset at every seq_len, with window caps."""

    datasets: tuple[str, ...] = ()
    seq_lens: tuple[int, ...] = ()
    caps: tuple = ()  # (seq_len, max windows) pairs
    per_case: bool = False

    def cap(self, seq_len: int) -> int | None:
        return dict(self.caps).get(seq_len)


@dataclass(frozen=True)
class Study:
    """A validated study file: the matrix a run expands into cases."""

    name: str
    path: Path
    description: str = ""
    law: str = "p2"
    holdout: tuple[str, ...] = ()
    seeds: tuple[int, ...] = (0,)  # every case runs under each; one seed: ids and records as without
    models: tuple[ModelEntry, ...] = ()
    methods: tuple[MethodEntry, ...] = ()
    posttrain: tuple = ()  # the [posttrain] table as declared, sorted (key, value) pairs; () = none
    evaluation: Evaluation = field(default_factory=Evaluation)
    zeroshot: ZeroShotSpec | None = None
    gates: GateSet = field(default_factory=GateSet)

    def method(self, label: str) -> MethodEntry:
        for m in self.methods:
            if m.label == label:
                return m
        raise KeyError(label)
