"""Checks on the selected cases before the first one runs: models resolve, and memory suffices.

`pytest bench` calls `check_cases` once collection (and ``-k``) has fixed the cases to run,
before the results directory is touched, so each failure is one line, exit 2, nothing written:

* every model spec resolves (`bench.sources.models.check_spec`): an alias, an existing path, or a hub id
  that `bench.sources.hub.resolve` finds (offline: a local copy at the pinned revision);
* every case fits its device (`bench.harness.memory`), estimated from the model's config on the meta
  device. A cheap upper bound (no pruning: the pruned copy as large as the dense model) clears
  most cases; only cases the bound does not clear are pruned on the meta device for their exact
  counts. A model whose config is not reachable is not estimated (its load reports why).

``--collect-only`` lists cases without running them: it skips the resolution check (so
``pytest bench --profile paper --collect-only`` lists the paper's ids on a machine without the
models) but still refuses a case that cannot fit.
"""

from __future__ import annotations

from bench.env import RunEnv
from bench.errors import UsageError
from bench.studies.cases import Case


def check_cases(cases: list[Case], env: RunEnv, resolve_models: bool = True) -> list:
    """Raise UsageError for the first problem; return each estimated case's `bench.harness.memory.Need`."""
    from bench.harness import memory
    from bench.sources.devices import default_dtype, resolve_device
    from bench.studies import params
    from pruners.report import count_params

    dev = resolve_device(env.device)
    dtype = default_dtype(dev)
    specs = list(dict.fromkeys(c.model for c in cases))
    teachers = {c.id: c.recipe.teacher for c in cases if c.recipe is not None and c.recipe.teacher is not None
                and c.recipe.objective != "ce" and not c.unpruned}
    if resolve_models:
        from bench.sources.models import check_spec

        for spec in dict.fromkeys([*specs, *teachers.values()]):
            check_spec(spec, env.models_dir)
    bounds: dict[str, params.Counted] = {}
    configs: dict[str, object] = {}
    for spec in dict.fromkeys([*specs, *teachers.values()]):
        try:
            config, source = params.find_config(spec, None, env.cache_dir, env.models_dir)
        except UsageError:
            if resolve_models:
                raise
            continue  # --collect-only: listing cases needs no model
        if config is not None:
            configs[spec] = config
            model = params.meta_model(config)
            n = count_params(model)
            bounds[spec] = params.Counted(n, n, source, tensors=n, lora_io=params.lora_features(model))
    _check_teachers(cases, teachers, configs, env)
    needs, exact = [], []
    for case in cases:
        if case.model not in bounds:
            continue
        teacher = bounds[teachers[case.id]].before if case.id in teachers and teachers[case.id] in bounds else None
        need = memory.case_need(case, bounds[case.model], dtype, teacher)
        if need.total(dev.type) > memory.capacity(dev, need).nbytes:
            exact.append(case)
        else:
            needs.append(need)
    counted = params.count_cases(exact, cache_dir=env.cache_dir, models_dir=env.models_dir) if exact else {}
    for case in exact:
        teacher = bounds[teachers[case.id]].before if case.id in teachers and teachers[case.id] in bounds else None
        need = memory.case_need(case, counted[case.id], dtype, teacher)
        memory.check(need, dev)
        needs.append(need)
    return needs


def _check_teachers(cases, teachers: dict, configs: dict, env: RunEnv) -> None:
    """A distillation recipe's named teacher must speak the student's language: the same
    vocabulary size (from the two configs) and, where both tokenizers can be read without
    loading a model, the same tokenization (one line naming both, before any case runs)."""
    from bench.training.zoo import TOKENIZER_PROBE

    for case in cases:
        teacher = teachers.get(case.id)
        if teacher is None:
            continue
        a, b = configs.get(case.model), configs.get(teacher)
        if a is not None and b is not None and a.vocab_size != b.vocab_size:
            raise UsageError(f"case {case.id}: teacher {teacher} has a vocabulary of {b.vocab_size:,} tokens and the "
                             f"student {case.model} one of {a.vocab_size:,}; distil from a model with the student's "
                             f"tokenizer (e.g. a larger model of its family)")
        tok_a, tok_b = _tokenizer(case.model, env), _tokenizer(teacher, env)
        if tok_a is not None and tok_b is not None and \
                tok_a(TOKENIZER_PROBE)["input_ids"] != tok_b(TOKENIZER_PROBE)["input_ids"]:
            raise UsageError(f"case {case.id}: teacher {teacher} tokenizes text differently from the student "
                             f"{case.model}; distil from a model with the student's tokenizer")


def _tokenizer(spec: str, env: RunEnv):
    """The tokenizer of a zoo model or a local save_pretrained directory, without its weights;
    None for anything else (its vocabulary size is checked instead)."""
    from pathlib import Path

    from bench.sources.loaders import load_saved_tokenizer
    from bench.training import zoo, zoo_families

    if zoo_families.is_nano(spec):
        return zoo.load_tokenizer(zoo_families.parse_spec(spec)[0], env.cache_dir, env.data_dir)
    path = Path(spec).expanduser()
    return load_saved_tokenizer(path) if path.is_dir() else None
