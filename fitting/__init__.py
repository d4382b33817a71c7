"""Scaling laws of post-training loss and their fitting (numpy + scipy only, no torch).

Data model (`fitting.data`):
    Run(run_id, group, inputs, tokens, loss) is one loss curve: one model x method x ratio,
    with the loss at each checkpoint. `inputs` holds the law's per-run constants in raw units
    (N0 parameters, rho, L0, N; a float or one value per checkpoint), `tokens` the token axis
    (the law input `D`), `group` the base model key (size/family) that the extrapolation
    protocol selects on. Data without time structure (Chinchilla's final losses) make one run
    per point: `runs_from_table(columns, inputs, loss, run_column=None)`.

Laws (`fitting.laws`): one module per form, registered by name: chinchilla, p2, p2-n, p2-nm,
    and the candidates p2-no-n0 (no size prefactor), gap-chinchilla (Chinchilla on L - L0 in
    the pruned size N) and p2-l0d (the control curve L0(D) in place of the constant L0).
    get_law(name) -> Law, available_laws() -> list[str]. A Law declares its params (fit
    parameterisation, amplitudes as logs), inputs (in `--columns` order), default units and
    initial grid, and predicts log L for a batch of parameter vectors.

Fitting (`fitting.fitter`, `fitting.intervals`):
    fit(runs, law, *, units=None, grid=None, starts=None, delta=1e-3, n_polish=5) -> FitResult
        Summed Huber loss (delta 1e-3) of log residuals; every start of the grid screened by a
        batched Levenberg-Marquardt pass, the best polished with scipy L-BFGS-B.
    FitResult: .params, .constants, .objective, .units, .n_points, .n_runs, .converged,
        .predict(x), .predict_run(run), .to_dict()
    bootstrap(runs, law, *, n=200, seed=0, level=0.95, **fit_kwargs) -> BootstrapResult
        Percentile intervals from refits on whole runs drawn with replacement; every replicate
        is searched exactly as the main fit (same grid or starts, same polish), never
        warm-started from its optimum. Law.search_grid("coarse") gives the small grid the
        study uses for both.

Judging a fit (`fitting.identify`, `fitting.conditions`, `fitting.forms`, `fitting.generalise`):
    identifiability(runs, law, boot) -> per-constant and overall verdicts with reasons
    check_conditions(result, runs) -> the four conditions of a law, met / not / n/a
    compare_forms(fit_runs, heldout_runs) -> every candidate form fitted and scored
    larger_d / larger_n0 / higher_rho -> the paper's three generalisation tests, scored on L
        and on the gap L - L0 (`fitting.metrics.gap_errors`)

Validation (`fitting.metrics`, `fitting.generalise`):
    evaluate(pred, actual, tokens, run) / evaluate_fit(result, runs) -> {r2, huber, mape,
        slope_difference, n_points}
    larger_d(runs, law, fraction=0.8) / larger_n0(result, heldout, fit_groups) /
        higher_rho(runs, law, ratio_of) -> the paper's three generalisation tests

Optimal post-training data (`fitting.optimal`):
    tokens_to_margin(result, point, margin=0.01, max_tokens=None) -> TokenTarget
    tokens_to_slope(result, point, threshold, max_tokens=None) -> TokenTarget

Data helpers: `fitting.table` (CSV columns and [bracketed] column expressions for
`prunebench fit --points`), `fitting.chinchilla` (Besiroglu et al.'s points and the published
estimates), `fitting.synthetic.make_runs` (runs drawn from a law at known parameters).

Units: data are always raw counts; each law divides them by its units (p2: N0 in 1e9
parameters, D in 1e6 tokens; chinchilla: raw) and every FitResult stores the units used.
User mistakes raise `fitting.errors.FitError` (a ValueError; `fitting` imports nothing of `bench`).

Speed: the 4,500-start Chinchilla grid takes a few seconds (batched float32-then-float64
screen, chunks in threads: $PRUNEBENCH_FIT_THREADS, default the cores up to 4; BLAS is held
to one thread during fits).
"""

import importlib

# Loaded on first use, so that `fitting.errors` (which `bench.errors` imports) does not pull in
# numpy and scipy.
_EXPORTS = {
    "BootstrapResult": "intervals", "bootstrap": "intervals",
    "Points": "data", "Run": "data", "runs_from_table": "data", "stack": "data",
    "FitResult": "fitter", "fit": "fitter", "fit_points": "fitter",
    "Law": "laws", "Unit": "laws", "available_laws": "laws", "get_law": "laws", "register": "laws",
    "evaluate": "metrics", "evaluate_fit": "metrics",
    "TokenTarget": "optimal", "tokens_to_margin": "optimal", "tokens_to_slope": "optimal",
    "larger_d": "generalise", "larger_n0": "generalise", "higher_rho": "generalise",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"fitting.{_EXPORTS[name]}"), name)
    try:
        return importlib.import_module(f"fitting.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"fitting.{name}":
            raise
        raise AttributeError(f"module 'fitting' has no attribute {name!r}") from None
