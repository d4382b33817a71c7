"""A validated study -> its benchmark cases (`bench.studies.cases.Case`), in run order.

Order: models, then methods in file order, then ratios; with ``per_case`` evaluation each
(method, ratio) gives one case per measurement and then its zero-shot case. Cases of one
pruned model are adjacent, so the runner prunes each model once (it memoises the last one).
Each case takes the objects the study built (the method's config, calibration, recipe,
zero-shot spec); nothing is built or parsed again here.
"""

from __future__ import annotations

from dataclasses import replace

from bench.errors import UsageError
from bench.studies.cases import Case, Declared, EvalSpec
from bench.studies.entries import MethodEntry, ModelEntry, Study


def study_cases(study: Study, full_eval: bool = False, seeds: tuple[int, ...] | None = None) -> list[Case]:
    """Every case of `study`; ``full_eval`` lifts window caps and zero-shot limits, `seeds`
    (default the study's) runs every case under each seed, seed by seed.

    Raises:
        UsageError: two cases would have the same id (naming the entries of both).
    """
    cases: list[Case] = []
    origin: dict[str, str] = {}
    zs = study.zeroshot
    if zs is not None and full_eval:
        zs = replace(zs, limit=None, task_limits=())
    ev = study.evaluation
    specs = tuple(EvalSpec(d, s, None if full_eval else ev.cap(s)) for s in ev.seq_lens for d in ev.datasets)
    seeds = tuple(seeds or study.seeds)
    for seed in seeds:
        for model in study.models:
            for entry in study.methods:
                for ratio in entry.ratios_for(model.key):
                    _add(cases, origin, study, model, entry, ratio, specs, zs, seed if len(seeds) > 1 else None)
    return cases


def _add(cases: list, origin: dict, study: Study, model: ModelEntry, entry: MethodEntry, ratio: float, specs, zs,
         seed: int | None) -> None:
    """The case(s) of one (model, method, ratio) under one seed (None: the study has one)."""
    config, keys = entry.config_for(model.key, ratio)
    base = dict(study=study.name, model=_seeded_spec(model, seed), model_key=model.key, method=entry.method,
                ratio=float(ratio), label=entry.label, prune=config, calibration=_calibration(entry, model),
                recipe=model.recipe, family=model.family, seed=seed,
                declared=Declared(keys, entry.calibration_keys, model.recipe_keys))
    where = f"{model.where} x {entry.where}"
    if study.evaluation.per_case:
        made = [Case(**base, evals=(spec,), id_suffix=f"{spec.dataset}-{spec.seq_len}") for spec in specs]
        if zs is not None:
            made.append(Case(**base, zeroshot=zs, id_suffix="zeroshot"))
    else:
        made = [Case(**base, evals=specs, zeroshot=zs)]
    for case in made:
        if case.id in origin:
            raise UsageError(f"study {study.path}: {origin[case.id]} and {where} both make case {case.id!r}; give "
                             f"one of the methods another label or the models different keys")
        origin[case.id] = where
        cases.append(case)


def _seeded_spec(model: ModelEntry, seed: int | None) -> str:
    """A zoo model drawn under the study seed (`bench.training.zoo_families.seeded`); any other
    model is the same under every seed."""
    from bench.training import zoo_families

    if not seed or not zoo_families.is_nano(model.spec):
        return model.spec
    family, size = zoo_families.parse_spec(model.spec)
    return zoo_families.seeded(family.name, seed).spec(size.key)


def _calibration(entry: MethodEntry, model: ModelEntry):
    """The method's calibration spec; a SlimPajama draw reads the directory of the model's
    recipe (its ``corpus_dir``) when the calibration names none."""
    spec = entry.calibration
    if (spec is not None and spec.source == "slimpajama" and spec.corpus_dir is None and model.recipe is not None
            and model.recipe.corpus_dir is not None):
        return replace(spec, corpus_dir=model.recipe.corpus_dir)
    return spec
