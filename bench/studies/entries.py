"""A validated study: the dataclasses `bench.studies.expand` reads, and the keys of each table.

`bench.studies.schema` builds a `Study` from a file; every value in it has been checked, and
every table is stored as sorted (key, value) pairs, so a study and its cases stay hashable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bench.training.calibration_data import CALIB_KEYS as CALIB_KEYS_OF_CASES

TOP_KEYS = ("include", "study", "models", "methods", "calibration", "posttrain", "evaluation", "zeroshot", "gates")
STUDY_KEYS = ("name", "description", "law", "holdout")
MODEL_KEYS = ("spec", "key", "family", "zoo", "posttrain", "options", "revision")
METHOD_KEYS = ("method", "label", "ratios", "options", "calibration")
CALIB_KEYS = ("source", "samples", "seq_len", "seed")
EVAL_KEYS = ("datasets", "seq_lens", "max_windows", "per_case")
ZEROSHOT_KEYS = ("tasks", "limit", "limits", "max_length", "batch_size", "bootstrap_iters")
GATE_KEYS = ("max_extrapolation_error", "baseline", "max_ppl_regression", "max_control_improvement")
UNPRUNED = ("dense", "control")  # methods that keep the model as it is (ratio 0)
# Calibration fields as a case's prune options spell them (`bench.training.calibration_data.CALIB_KEYS`).
CASE_CALIB = {field: key for key, field in CALIB_KEYS_OF_CASES.items()}


@dataclass(frozen=True)
class ModelEntry:
    """One model of a study (a zoo entry expands to one per size)."""

    spec: str
    key: str
    family: str
    posttrain: tuple = ()  # sorted (key, value) overrides of the study's recipe
    options: tuple = ()  # (method, sorted (key, value) overrides) pairs
    where: str = ""  # "models[2]", for messages

    def options_for(self, method: str) -> dict:
        return dict(dict(self.options).get(method, ()))


@dataclass(frozen=True)
class MethodEntry:
    """One row of the method axis: a method, its label, options, calibration and ratios."""

    method: str
    label: str
    options: tuple = ()  # sorted (key, value) pairs: the method's config fields
    calibration: tuple = ()  # the case's calibration options (calibration, samples, ...), or ()
    ratios: tuple = ()  # ratios for every model, or () when `ratios_by_model` is set
    ratios_by_model: tuple = ()  # (model key, ratios) pairs
    where: str = ""

    def ratios_for(self, model_key: str) -> tuple:
        """The ratios this method runs on a model (() when it skips the model)."""
        if self.method in UNPRUNED:
            return (0.0,)
        if self.ratios_by_model:
            return dict(self.ratios_by_model).get(model_key, ())
        return self.ratios


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
class Gates:
    """Default gate options; a gate option given on the command line replaces its default."""

    max_extrapolation_error: tuple[str, ...] = ()
    baseline: str | None = None
    max_ppl_regression: str | None = None
    max_control_improvement: str | None = None


@dataclass(frozen=True)
class Study:
    """A validated study file."""

    name: str
    path: Path
    description: str = ""
    law: str = "p2"
    holdout: tuple[str, ...] = ()
    models: tuple[ModelEntry, ...] = ()
    methods: tuple[MethodEntry, ...] = ()
    posttrain: tuple = ()  # sorted (key, value) pairs; () = no post-training
    evaluation: Evaluation = field(default_factory=Evaluation)
    zeroshot: tuple = ()  # validated ZeroShotSpec fields as sorted pairs; () = none
    gates: Gates = field(default_factory=Gates)

    def method(self, label: str) -> MethodEntry:
        for m in self.methods:
            if m.label == label:
                return m
        raise KeyError(label)
