"""The study's settings tables, each checked by the code that runs it: [calibration]
(`CalibrationSpec`), [posttrain] (`Recipe.from_options`, with every model's overrides),
[evaluation], [zeroshot] (`ZeroShotSpec`) and [gates] (the gate option parsers).
"""

from __future__ import annotations

from pathlib import Path

from bench.errors import USER_ERRORS, UsageError, did_you_mean
from bench.studies.checks import _pairs, _Where
from bench.studies.entries import (CALIB_KEYS, CASE_CALIB, EVAL_KEYS, GATE_KEYS, ZEROSHOT_KEYS, Evaluation, Gates,
                                   Study)


def _calibration(w: _Where, value, key: str) -> tuple:
    """A calibration table -> the case's calibration options, checked by CalibrationSpec."""
    from bench.training.calibration_data import CalibrationSpec

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
        CalibrationSpec(**table)
    except USER_ERRORS as exc:
        raise w.error(key, str(exc)) from None
    return tuple(sorted((CASE_CALIB[k], v) for k, v in table.items()))


def _posttrain(w: _Where, value, models) -> tuple:
    """The recipe, checked by `Recipe.from_options` for every model's overrides too."""
    if value is None:
        for m in models:
            if m.posttrain:
                raise w.error(f"{m.where}.posttrain", "overrides a recipe, but the study has no [posttrain]")
        return ()
    table = w.table(value, "posttrain")
    if not table:
        raise w.error("posttrain", "is empty; give the recipe's fields or drop the table")
    for m in models:
        _recipe(w, {**table, **dict(m.posttrain)}, f"{m.where}.posttrain" if m.posttrain else "posttrain")
    return _pairs(table)


def _recipe(w: _Where, options: dict, key: str):
    from bench.training import corpus
    from bench.training.posttrain import Recipe

    try:
        return Recipe.from_options(options)
    except UsageError as exc:
        if options.get("corpus") in PENDING_CORPORA and options["corpus"] not in corpus.CORPORA:
            # Everything else of the recipe is still checked; the corpus fails at run time.
            return _recipe(w, {**options, "corpus": "wikitext2"}, key)
        raise w.error(key, str(exc)) from None
    except TypeError as exc:
        raise w.error(key, " ".join(str(exc).split())) from None


# Corpora a study may name before this build has them: the rest of its recipe is validated, and
# a case that post-trains on one fails when it runs with the corpus module's own error. Empty
# since slimpajama landed (issue 10 item 4).
PENDING_CORPORA: tuple[str, ...] = ()


def pending_corpus(study: Study) -> str | None:
    """The recipe's corpus when this build cannot train on it yet, else None."""
    from bench.training import corpus

    name = dict(study.posttrain).get("corpus")
    return name if name is not None and name not in corpus.CORPORA else None


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


def _zeroshot(w: _Where, value) -> tuple:
    from bench.evaluation.zeroshot import ZeroShotSpec

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
        ZeroShotSpec(**fields)
    except UsageError as exc:
        raise w.error("zeroshot", str(exc)) from None
    return tuple(sorted(fields.items()))


def _gates(w: _Where, value) -> Gates:
    from bench.studies.gate_specs import parse_law_scope, parse_percent

    table = w.table(value, "gates")
    w.keys(table, GATE_KEYS, "gates")
    scopes = w.strings(table.get("max_extrapolation_error", []), "gates.max_extrapolation_error")
    try:
        for s in scopes:
            parse_law_scope(s)
        for k in ("max_ppl_regression", "max_control_improvement"):
            if k in table:
                parse_percent(w.string(table[k], f"gates.{k}"), f"gates.{k}")
    except UsageError as exc:
        raise w.error("gates", str(exc)) from None
    baseline = table.get("baseline")
    if baseline is not None:  # a results directory or record file, relative to the study file
        baseline = str(w.path.parent / Path(w.string(baseline, "gates.baseline")).expanduser())
    if (baseline is None) != ("max_ppl_regression" not in table):
        raise w.error("gates", "baseline and max_ppl_regression go together: give both or neither")
    return Gates(scopes, baseline, table.get("max_ppl_regression"), table.get("max_control_improvement"))
