"""Model surgery: depth, width, LLM-Pruner block-wise and N:M pruning.

Every method is declared in `pruners.registry` with a config dataclass that validates
itself, and is a pure function ``(model, calibration, config) -> PruneReport`` that changes
the model in place::

    from pruners.registry import prune
    from pruners.blockwise import BlockwiseConfig
    report = prune(model, calibration_ids, BlockwiseConfig(ratio=0.25, layers=(4, 28)))

A new method is one module: a config dataclass whose fields carry their help text
(`pruners.options`; the CLI flags and study-file keys are generated from it) and one
``@register`` line. The methods by name are `bench.registry.METHODS` (``make_config("blockwise",
...)`` there), which discovers them in this package, the ``prunebench.pruners`` entry points and
``$PRUNEBENCH_PLUGINS``. Architecture access lives in
`pruners.adapter`, calibration data in `pruners.calibration`, masks that post-training keeps in
`pruners.masks`, saving and loading (per-layer widths, N:M checks) in `pruners.saving`, the error a bad
request raises (`PrunerError`) in `pruners.errors`.

The package itself re-exports nothing: importing `pruners.errors` (as `bench.errors` does)
must not pull in torch, so callers import from the module that owns a name.
"""
