"""The study's settings tables, each built into the object that runs it: [calibration]
(`CalibrationSpec`), [posttrain] (a `Recipe` for every model, with its overrides),
[evaluation], [zeroshot] (`ZeroShotSpec`) and [gates] (a `bench.studies.gates.GateSet`).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from bench.errors import USER_ERRORS, UsageError, did_you_mean
from bench.evaluation.zeroshot import ZeroShotSpec
from bench.sources.calibration import CalibrationSpec
from bench.studies.checks import _Where
from bench.studies.entries import CALIB_KEYS, EVAL_KEYS, ZEROSHOT_KEYS, Evaluation, ModelEntry
from bench.studies.gates import GATE_KEYS, GateSet, parse_gates
from bench.training.recipe import Recipe


def _calibration(w: _Where, value, key: str) -> tuple[CalibrationSpec, tuple[str, ...]]:
    """A calibration table -> (its CalibrationSpec, the fields it sets)."""
    table = w.table(value, key)
    w.keys(table, CALIB_KEYS, key)
    if "source" in table:
        w.string(table["source"], f"{key}.source")
    for k in ("samples", "seq_len"):
        if k in table:
            w.integer(table[k], f"{key}.{k}", low=2 if k == "seq_len" else 1)
    if "seed" in table:
        w.integer(table["seed"], f"{key}.seed", low=0)
    try:
        spec = CalibrationSpec(**table)
    except USER_ERRORS as exc:
        raise w.error(key, str(exc)) from None
    return spec, tuple(sorted(table))


def _posttrain(w: _Where, value, models: tuple[ModelEntry, ...], overrides: dict) -> tuple[ModelEntry, ...]:
    """Each model with its recipe built: the [posttrain] table under the model's overrides
    (`overrides`: model where -> its posttrain table)."""
    if value is None:
        for m in models:
            if overrides.get(m.where):
                raise w.error(f"{m.where}.posttrain", "overrides a recipe, but the study has no [posttrain]")
        return models
    table = w.table(value, "posttrain")
    if not table:
        raise w.error("posttrain", "is empty; give the recipe's fields or drop the table")
    out = []
    for m in models:
        own = overrides.get(m.where) or {}
        options = {**table, **own}
        out.append(replace(m, recipe=_recipe(w, options, f"{m.where}.posttrain" if own else "posttrain"),
                           recipe_keys=tuple(sorted(options))))
    return tuple(out)


def _recipe(w: _Where, options: dict, key: str) -> Recipe:
    try:
        return Recipe.from_options(options)
    except UsageError as exc:
        raise w.error(key, str(exc)) from None
    except TypeError as exc:
        raise w.error(key, " ".join(str(exc).split())) from None


def _evaluation(w: _Where, value) -> Evaluation:
    from bench.sources.data import EVAL_SPLIT

    table = w.table(value, "evaluation")
    w.keys(table, EVAL_KEYS, "evaluation")
    if not table:
        return Evaluation()
    datasets = w.strings(table.get("datasets", []), "evaluation.datasets")
    for d in datasets:
        if d not in EVAL_SPLIT:
            raise w.error("evaluation.datasets", f"unknown dataset {d!r}{did_you_mean(d, EVAL_SPLIT)}; "
                                                 f"choose from {', '.join(EVAL_SPLIT)}")
    seqs = table.get("seq_lens", [])
    if not isinstance(seqs, list) or not seqs:
        raise w.error("evaluation.seq_lens", f"must be a non-empty array of sequence lengths, got {seqs!r}")
    seq_lens = tuple(w.integer(s, "evaluation.seq_lens", low=2) for s in seqs)
    if not datasets:
        raise w.error("evaluation.datasets", "must name at least one dataset")
    caps: dict[int, int] = {}
    cap = table.get("max_windows")
    if isinstance(cap, dict):
        for k, v in cap.items():
            if not k.isdigit() or int(k) not in seq_lens:
                raise w.error(f"evaluation.max_windows.{k}", f"is not one of seq_lens {list(seq_lens)}")
            caps[int(k)] = w.integer(v, f"evaluation.max_windows.{k}")
    elif cap is not None:
        caps = {s: w.integer(cap, "evaluation.max_windows") for s in seq_lens}
    per_case = w.boolean(table.get("per_case", False), "evaluation.per_case")
    return Evaluation(datasets, seq_lens, tuple((s, caps[s]) for s in seq_lens if s in caps), per_case)


def _zeroshot(w: _Where, value) -> ZeroShotSpec:
    table = w.table(value, "zeroshot")
    w.keys(table, ZEROSHOT_KEYS, "zeroshot")
    if "tasks" not in table:
        raise w.error("zeroshot", "needs tasks = [...] (lm-eval task names)")
    tasks = w.strings(table["tasks"], "zeroshot.tasks")
    limits = w.table(table.get("limits", {}), "zeroshot.limits")
    fields = {"tasks": tasks}
    if "limit" in table:
        fields["limit"] = w.integer(table["limit"], "zeroshot.limit")
    if limits:
        fields["task_limits"] = tuple((t, w.integer(k, f"zeroshot.limits.{t}")) for t, k in limits.items())
    for k in ("max_length", "batch_size", "bootstrap_iters"):
        if k in table:
            fields[k] = w.integer(table[k], f"zeroshot.{k}", low=0 if k == "bootstrap_iters" else 1)
    try:
        return ZeroShotSpec(**fields)
    except UsageError as exc:
        raise w.error("zeroshot", str(exc)) from None


def _gates(w: _Where, value) -> GateSet:
    table = w.table(value, "gates")
    w.keys(table, GATE_KEYS, "gates")
    scopes = w.strings(table.get("max_extrapolation_error", []), "gates.max_extrapolation_error")
    limits = {k: w.string(table[k], f"gates.{k}") for k in ("max_ppl_regression", "max_control_improvement")
              if k in table}
    baseline = table.get("baseline")
    if baseline is not None:  # a results directory or record file, relative to the study file
        baseline = str(w.path.parent / Path(w.string(baseline, "gates.baseline")).expanduser())
    try:
        return parse_gates(scopes, baseline, limits.get("max_ppl_regression"), limits.get("max_control_improvement"))
    except UsageError as exc:
        raise w.error("gates", str(exc)) from None
