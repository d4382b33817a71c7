"""One group's fit: the law, its bootstrap and identifiability, the generalisation tests, the
candidate forms, and the predicted post-training tokens (`fit_group`), with its config.

Each step after the fit can fail on its own; a failure is recorded in the `GroupFit`, never
raised, so one degenerate group does not cost the others their report.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from bench.errors import USER_ERRORS, UsageError
from fitting.protocols import extrapolation_metrics
from fitting.optimal import outside_factor
from reports.recipes import recipe_summary
from bench.harness.fit_runs import sizes_by_params

# Law used for 2:4 groups when the study's law is rho-based: for N:M the ratio is fixed, so
# the paper (Eq. 7) drops the rho factor.
NM_LAW = {"p2": "p2-nm", "p2-n": "p2-nm"}
# A prediction off from the measurement by more than this factor either way is a run-away
# fit (the 2:4 fit once predicted 8e6 nats), not a measured error.
RUNAWAY_FACTOR = 10.0


BOOTSTRAP_ENV = "PRUNEBENCH_BOOTSTRAP"


def default_bootstrap() -> int:
    """Bootstrap replicates of a fit: $PRUNEBENCH_BOOTSTRAP, else 100 (0 turns it off,
    which leaves every fit 'not identified': there is nothing to judge the constants by)."""
    import os

    raw = os.environ.get(BOOTSTRAP_ENV, "").strip()
    if not raw:
        return 100
    if not raw.isdigit():
        raise UsageError(f"{BOOTSTRAP_ENV} must be a non-negative integer (replicates), got {raw!r}")
    return int(raw)


@dataclass
class FitConfig:
    """How to fit: law, which sizes to hold out, the search, and the token questions.

    The defaults keep the report step of the nano study (3 groups) to about a minute on 2
    cores: the coarse grid (128 starts for p2) for the main fit and for each of the 100
    bootstrap replicates, 2 polished endpoints each.
    """

    law: str = "p2"
    holdout: tuple[str, ...] | None = None  # model keys; None = the largest size per family
    margin: float = 0.01  # relative margin to the asymptote for "optimal tokens"
    slope_threshold: float = 1e-8  # loss per token for the marginal-gain criterion
    bootstrap: int = field(default_factory=lambda: default_bootstrap())
    seed: int = 0
    search: str = "coarse"  # which grid of each law starts the search: "coarse" or "full"
    n_polish: int = 2
    forms: bool = True  # fit and compare every candidate form
    # Refit the main fit once from the full grid, to see the coarse search suffices (about 12
    # replicates' worth of time per group; `prunebench report --check-search` turns it on).
    check_search: bool = False


@dataclass
class GroupFit:
    """Everything fitted for one (family, method, recipe) group."""

    family: str
    method: str
    law: str
    fit_sizes: list[str]
    heldout_sizes: list[str]
    runs: list = field(default_factory=list)  # fitting.Run, all sizes
    recipe: str = "unrecorded"
    recipe_config: dict = field(default_factory=dict)
    seed: int | None = None  # the study seed of its records (None: the study had one)
    ratio_of: dict = field(default_factory=dict)  # run_id -> nominal ratio
    fit: object = None  # FitResult on the fit sizes
    bootstrap: object = None  # BootstrapResult or None
    identifiability: dict | None = None
    within_run: dict | None = None
    extrapolation: dict = field(default_factory=dict)  # size -> metrics
    tests: dict = field(default_factory=dict)  # generalisation test name -> result
    forms: list = field(default_factory=list)  # candidate form comparison
    optimal: list[dict] = field(default_factory=list)
    search: dict = field(default_factory=dict)
    error: str | None = None  # why the group could not be fitted, if it could not
    notes: list[str] = field(default_factory=list)  # steps after the fit that could not run

    @property
    def key(self) -> str:
        """'family/method@recipe': the group a gate scope names (its seeds share the key)."""
        return f"{self.family}/{self.method}@{self.recipe}"

    @property
    def label(self) -> str:
        """The key, and the seed when there are several: 'nano-llama/width@full-a29a8e, seed 1'."""
        return self.key if self.seed is None else f"{self.key}, seed {self.seed}"

    def data_range(self) -> dict:
        """[min, max] of N0, D and rho over the fitted runs (what `predict` checks against)."""
        import numpy as np

        fitted = [r for r in self.runs if r.group in self.fit_sizes]
        out = {}
        for name in ("N0", "D", "rho"):
            if fitted:
                v = np.concatenate([r.column(name) for r in fitted])
                out[name] = [float(v.min()), float(v.max())]
        return out

    def to_dict(self) -> dict:
        return {
            "key": self.key, "seed": self.seed, "family": self.family, "method": self.method, "law": self.law,
            "recipe": self.recipe, "recipe_config": self.recipe_config,
            "recipe_summary": recipe_summary(self.recipe_config),
            "fit_sizes": self.fit_sizes, "heldout_sizes": self.heldout_sizes,
            "runs": [r.run_id for r in self.runs],
            "curves": [r.to_dict() for r in self.runs],  # what the report's plots draw
            "n0": {s: next(r.inputs["N0"] for r in self.runs if r.group == s) for s in self.fit_sizes + self.heldout_sizes},
            "data_range": self.data_range(),
            "search": self.search,
            "fit": self.fit.to_dict() if self.fit is not None else None,
            "bootstrap": self.bootstrap.to_dict() if self.bootstrap is not None else None,
            "identifiability": self.identifiability,
            "within_run": self.within_run, "extrapolation": self.extrapolation,
            "tests": self.tests, "forms": self.forms,
            "optimal_tokens": self.optimal, "error": self.error, "notes": self.notes,
        }


def _units_for(runs) -> dict:
    # The paper's units (N0 in billions) make nano-model constants unreadable; use millions
    # below 100M parameters. The units are stored with every fit either way.
    biggest = max(r.inputs["N0"] for r in runs)
    return {"N0": 1e6, "N": 1e6} if biggest < 1e8 else {}


def _law_inputs_units(law_name: str, units: dict) -> dict:
    from fitting import get_law

    law = get_law(law_name)
    return {k: v for k, v in units.items() if k in law.inputs}


def runaway(metrics: dict) -> str | None:
    """Why a test target's figures are a run-away fit rather than a measurement, or None."""
    worst = metrics.get("worst_ratio")
    if worst is None or (math.isfinite(worst) and worst <= RUNAWAY_FACTOR):
        return None
    return f"run-away prediction (off by a factor {worst:.3g} at some checkpoint; limit {RUNAWAY_FACTOR:g})"


def _mark_runaways(test: dict) -> None:
    for m in test.get("targets", {}).values():
        m["runaway"] = runaway(m)


def fit_group(family: str, method: str, runs: list, config: FitConfig, recipe: str = "unrecorded",
              recipe_cfg: dict | None = None, ratio_of: dict | None = None, seed: int | None = None) -> GroupFit:
    """Fit, judge, test and compare one group; failures are recorded, not raised."""
    from fitting import bootstrap, fit, get_law, tokens_to_margin, tokens_to_slope
    from fitting.forms import compare_forms
    from fitting.generalise import higher_rho, larger_d, larger_n0
    from fitting.identify import identifiability

    law = NM_LAW.get(config.law, config.law) if method == "nm" else config.law
    sizes = sizes_by_params(runs)
    if config.holdout is None:
        heldout = sizes[-1:] if len(sizes) > 1 else []
    else:
        heldout = [s for s in config.holdout if s in sizes]
    fit_sizes = [s for s in sizes if s not in heldout]
    g = GroupFit(family, method, law, fit_sizes, heldout, runs, recipe=recipe, recipe_config=dict(recipe_cfg or {}),
                 seed=seed,
                   ratio_of=dict(ratio_of or {r.run_id: r.inputs["rho"] for r in runs}))
    units = _law_inputs_units(law, _units_for(runs))
    starts = get_law(law).search_grid(config.search)
    search = dict(units=units, starts=starts, n_polish=config.n_polish)
    g.search = {"grid": config.search, "starts": int(len(starts)), "n_polish": config.n_polish,
                "bootstrap_replicates": config.bootstrap, "bootstrap_search": "same as the main fit (no warm start)"}
    fit_runs = [r for r in runs if r.group in fit_sizes]
    held_runs = [r for r in runs if r.group in heldout]
    try:
        g.fit = fit(fit_runs, law, **search)
    except USER_ERRORS as exc:
        g.error = str(exc)
        g.identifiability = {"identified": False, "verdict": "not identified", "reasons": [f"the fit failed: {exc}"],
                             "constants": {}}
        g.tests = {"larger-n0": larger_n0(None, held_runs, fit_sizes, error=f"the fit failed: {exc}")}
        return g
    if config.check_search and config.search == "coarse":
        # The coarse grid is what makes 100 searched replicates affordable; one fit from the
        # full grid says whether it finds this group's optimum (fit.json and the report say
        # when it does not, and the intervals then come from a search that is too small).
        try:
            full = fit(fit_runs, law, units=units, starts=get_law(law).search_grid("full"), n_polish=config.n_polish)
            better = full.objective < g.fit.objective * (1 - 1e-6)
            g.search.update(full_grid_objective=full.objective, coarse_objective=g.fit.objective,
                            coarse_reaches_full=not better)
            if better:
                g.notes.append(f"search: the full grid ({full.n_starts} starts) found a lower objective "
                               f"({full.objective:.6g} < {g.fit.objective:.6g}); the coarse search misses this "
                               "group's optimum: re-render with --search full")
        except USER_ERRORS as exc:
            g.notes.append(f"search check: {exc}")
    # Each later step can fail on its own (a bootstrap resample or the 80% within-run split
    # may have fewer points than parameters); that is recorded, and the rest still runs.
    boot_error = None
    try:
        if config.bootstrap:
            g.bootstrap = bootstrap(fit_runs, law, n=config.bootstrap, seed=config.seed, **search)
    except USER_ERRORS as exc:
        boot_error = str(exc)
        g.notes.append(f"bootstrap: {exc}")
    g.identifiability = identifiability(fit_runs, law, g.bootstrap, boot_error=boot_error)

    d = larger_d(fit_runs, law, **search)
    if d["error"] is not None:
        g.notes.append(f"larger-d: {d['error']}")
    g.within_run = d.get("overall")
    n = larger_n0(g.fit, held_runs, fit_sizes)
    rho = higher_rho(runs, law, g.ratio_of, **search)
    g.tests = {"larger-d": d, "larger-n0": n, "higher-rho": rho}
    for test in g.tests.values():
        _mark_runaways(test)
    for size, m in n["targets"].items():
        g.extrapolation[size] = extrapolation_metrics(m)
    if config.forms:
        g.forms = compare_forms(fit_runs, held_runs, search=config.search, units=_units_for(runs),
                                n_polish=config.n_polish)
        for f in g.forms:
            if f.get("heldout"):
                f["heldout"]["runaway"] = runaway(f["heldout"])
    n0_lo, n0_hi = (g.data_range().get("N0") or [None, None])
    for r in runs:
        point = {k: r.inputs[k] for k in ("N0", "N", "rho", "L0")}
        trained = float(r.tokens[-1])
        g.optimal.append({
            "run": r.run_id, "size": r.group, "rho": r.inputs["rho"],
            "margin": config.margin, "slope_threshold": config.slope_threshold,
            "tokens_to_margin": _beyond(_target(tokens_to_margin, g.fit, point, config.margin), trained),
            "tokens_to_slope": _beyond(_target(tokens_to_slope, g.fit, point, config.slope_threshold), trained),
            "trained_tokens": trained,
            # How far outside the fitted sizes this run's N0 lies (1: inside), the rule `predict` applies.
            "n0_factor": outside_factor(point["N0"], n0_lo, n0_hi),
        })
    return g


def _beyond(target: dict, trained: float) -> dict:
    """A token target with how many times the trained tokens it lies at (`tokens_factor`)."""
    tokens = target.get("tokens")
    target["tokens_factor"] = tokens / trained if tokens is not None and trained > 0 else None
    return target


def _target(fn, result, point, arg) -> dict:
    """A token target, or an explicit 'not computable' when a degenerate fit overflows."""
    try:
        return fn(result, point, arg).to_dict()
    except ArithmeticError as exc:
        return {"tokens": None, "reachable": False, "limit": None, "loss": None,
                "reason": f"not computable from this fit ({exc.__class__.__name__})"}
