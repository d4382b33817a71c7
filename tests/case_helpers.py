"""Cases built in a test, the way a study file would declare them (for runner and session tests)."""

from __future__ import annotations

from bench.registry import make_config
from bench.sources.calibration import CalibrationSpec
from bench.studies.cases import Case, Declared, EvalSpec
from bench.training.recipe import Recipe


def make_case(study: str, model: str, model_key: str, method: str, *, ratio: float = 0.0, label: str = "",
              options: dict | None = None, calibration: dict | None = None, recipe: dict | None = None,
              evals: tuple[EvalSpec, ...] = (), family: str = "", zeroshot=None) -> Case:
    """A case whose method config, calibration spec and recipe are built from the option dicts a
    study table would hold; the dicts' keys are what its record declares."""
    options, calibration = dict(options or {}), dict(calibration or {})
    prune = None if method in ("dense", "control") else make_config(method, ratio=ratio, **options)
    return Case(study, model, model_key, method, ratio=ratio, label=label, prune=prune,
                calibration=CalibrationSpec(**calibration) if calibration else None,
                recipe=Recipe.from_options(recipe) if recipe is not None else None, evals=evals,
                zeroshot=zeroshot, family=family,
                declared=Declared(tuple(sorted(options)), tuple(sorted(calibration)), tuple(sorted(recipe or {}))))
