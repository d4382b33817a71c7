"""Model surgery: depth, width, LLM-Pruner block-wise and N:M pruning.

Every method is registered in `pruners.registry` with a config dataclass that validates
itself, and is a pure function ``(model, calibration, config) -> PruneReport`` that changes
the model in place::

    from pruners import make_config, prune
    report = prune(model, calibration_ids, make_config("blockwise", ratio=0.25, layers=(4, 28)))

A new method is one module: a config dataclass whose fields carry their help text
(`pruners.options`; the CLI flags and study-file keys are generated from it) and one
``@register`` line. Methods are discovered from this package, the ``prunebench.pruners`` entry
points and ``$PRUNEBENCH_PLUGINS`` (`pruners.registry`). Architecture access lives in
`pruners.adapter`, calibration data in `pruners.calibration`, masks that post-training keeps in
`pruners.masks`, saving and loading (per-layer widths, N:M checks) in `pruners.saving`.
"""

from pruners.registry import get_method, known_methods, make_config, prune, register
from pruners.report import PruneReport, count_params

__all__ = ["PruneReport", "count_params", "get_method", "known_methods", "make_config", "prune", "register"]
