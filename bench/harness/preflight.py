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
    if resolve_models:
        from bench.sources.models import check_spec

        for spec in specs:
            check_spec(spec, env.models_dir)
    bounds: dict[str, params.Counted] = {}
    for spec in specs:
        try:
            config, source = params.find_config(spec, None, env.cache_dir, env.models_dir)
        except UsageError:
            if resolve_models:
                raise
            continue  # --collect-only: listing cases needs no model
        if config is not None:
            model = params.meta_model(config)
            n = count_params(model)
            bounds[spec] = params.Counted(n, n, source, tensors=n, lora_io=params.lora_features(model))
    needs, exact = [], []
    for case in cases:
        if case.model not in bounds:
            continue
        need = memory.case_need(case, bounds[case.model], dtype)
        if need.total(dev.type) > memory.capacity(dev, need).nbytes:
            exact.append(case)
        else:
            needs.append(need)
    counted = params.count_cases(exact, cache_dir=env.cache_dir, models_dir=env.models_dir) if exact else {}
    for case in exact:
        need = memory.case_need(case, counted[case.id], dtype)
        memory.check(need, dev)
        needs.append(need)
    return needs
