"""A validated study -> its benchmark cases (`bench.studies.cases.Case`), in run order.

Order: models, then methods in file order, then ratios; with ``per_case`` evaluation each
(method, ratio) gives one case per measurement and then its zero-shot case. Cases of one
pruned model are adjacent, so the runner prunes each model once (it memoises the last one).
"""

from __future__ import annotations

from bench.studies.cases import Case, EvalSpec
from bench.errors import UsageError
from bench.studies.schema import ModelEntry, Study


def study_cases(study: Study, full_eval: bool = False) -> list[Case]:
    """Every case of `study`; ``full_eval`` lifts window caps and zero-shot limits.

    Raises:
        UsageError: two cases would have the same id (naming the entries of both).
    """
    cases: list[Case] = []
    origin: dict[str, str] = {}
    zs = _zeroshot(study, full_eval)
    ev = study.evaluation
    for model in study.models:
        recipe = _recipe(study, model)
        for entry in study.methods:
            prune = tuple(sorted({**dict(entry.options), **model.options_for(entry.method),
                                  **dict(entry.calibration)}.items()))
            for ratio in entry.ratios_for(model.key):
                base = dict(profile=study.name, model=model.spec, model_key=model.key, method=entry.method,
                            ratio=float(ratio), label=entry.label, prune=prune, posttrain=recipe, family=model.family)
                specs = [EvalSpec(d, s, None if full_eval else ev.cap(s)) for s in ev.seq_lens for d in ev.datasets]
                where = f"{model.where} x {entry.where}"
                if ev.per_case:
                    made = [Case(**base, evals=(spec,), id_suffix=f"{spec.dataset}-{spec.seq_len}") for spec in specs]
                    if zs is not None:
                        made.append(Case(**base, zeroshot=zs, id_suffix="zeroshot"))
                else:
                    made = [Case(**base, evals=tuple(specs), zeroshot=zs)]
                for case in made:
                    if case.id in origin:
                        raise UsageError(f"study {study.path}: {origin[case.id]} and {where} both make case "
                                         f"{case.id!r}; give one of the methods another label or the models "
                                         f"different keys")
                    origin[case.id] = where
                    cases.append(case)
    return cases


def _recipe(study: Study, model: ModelEntry) -> tuple:
    if not study.posttrain:
        return ()
    return tuple(sorted({**dict(study.posttrain), **dict(model.posttrain)}.items()))


def _zeroshot(study: Study, full_eval: bool):
    from bench.evaluation.zeroshot import ZeroShotSpec

    if not study.zeroshot:
        return None
    fields = dict(study.zeroshot)
    if full_eval:
        fields.pop("limit", None)
        fields.pop("task_limits", None)
    return ZeroShotSpec(**fields)
