"""The scaling-law study over stored records: group, fit, judge, test, compare, predict.

Records of post-trained cases become `fitting.Run`s (one loss curve each: held-out loss
against post-training tokens). Runs are grouped by (model family, pruning method,
post-training recipe): the paper fits each family and method separately, and curves of
different recipes (full post-training and LoRA, say) are different experiments that one law
must never mix. For every group:

* the law is fitted on the runs of the *fit sizes* (all but the held-out sizes) by a
  multistart search, and every bootstrap replicate (whole runs resampled) is searched the
  same way;
* each constant gets an identifiability verdict (`fitting.identify`), and so does the fit;
* the paper's three generalisation tests (`fitting.generalise`: larger D, larger N0, higher
  rho) are scored on L and on the recovery gap L - L0;
* every candidate form (`fitting.forms`) is fitted to the same runs and checked against the
  conditions a law must meet;
* the tokens each pruned model needs to come within a margin of its asymptote, and to bring
  the marginal gain per token under a threshold, are predicted from the fit.

No torch here: `prunebench fit` and `prunebench report` run without loading a model.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field

from bench.errors import USER_ERRORS, UsageError, did_you_mean

# Law used for 2:4 groups when the study's law is rho-based: for N:M the ratio is fixed, so
# the paper (Eq. 7) drops the rho factor.
NM_LAW = {"p2": "p2-nm", "p2-n": "p2-nm"}
FIT_SCHEMA = "prunebench.fit/2"
# A prediction off from the measurement by more than this factor either way is a run-away
# fit (the 2:4 fit once predicted 8e6 nats), not a measured error.
RUNAWAY_FACTOR = 10.0


BOOTSTRAP_ENV = "PRUNEBENCH_BOOTSTRAP"


def default_bootstrap() -> int:
    """Bootstrap replicates of a study: $PRUNEBENCH_BOOTSTRAP, else 100 (0 turns it off,
    which leaves every fit 'not identified': there is nothing to judge the constants by)."""
    import os

    raw = os.environ.get(BOOTSTRAP_ENV, "").strip()
    if not raw:
        return 100
    if not raw.isdigit():
        raise UsageError(f"{BOOTSTRAP_ENV} must be a non-negative integer (replicates), got {raw!r}")
    return int(raw)


@dataclass
class StudyConfig:
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


# ----------------------------------------------------------------------------- recipes


def recipe_config(rec: dict) -> dict:
    """The post-training recipe a record's case declared (its config), else the resolved one."""
    cfg = (rec.get("config") or {}).get("posttrain")
    if cfg is None:
        cfg = (rec.get("posttrain") or {}).get("recipe")
    return dict(cfg or {})


# Recipe fields that change how a run executes or what it records, not the loss curve it
# traces: runs that differ only in these belong to one experiment.
# corpus_dir is a machine path: the corpus's identity is in the record's data provenance instead.
EXECUTION_ONLY = ("micro_batch_tokens", "grad_checkpointing", "ppl_at_checkpoints", "processes", "engine",
                  "backend", "checkpoint_every", "corpus_dir", "state_every")


def recipe_label(cfg: dict) -> str:
    """A short, stable name of a recipe config: its kind and a digest ("full-3f2a1c").

    The digest is of the case's declared recipe, so the label stays the same across runs and
    machines, and two profiles that post-train differently never share one. Left out of it:
    the execution-only fields, and the token budget under a constant schedule, where a shorter
    run is a prefix of a longer one (the paper's 0.5B- and 1B-token models are one experiment).
    """
    if not cfg:
        return "unrecorded"
    kind = "lora" if cfg.get("lora") else "full"
    ident = {k: v for k, v in cfg.items() if k not in EXECUTION_ONLY}
    if ident.get("schedule", "constant") == "constant":
        ident.pop("tokens", None)
    digest = hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:6]
    return f"{kind}-{digest}"


def recipe_summary(cfg: dict) -> str:
    """The recipe in a few words, for the report ("full, lr 0.0005 constant, 131,072 tokens")."""
    if not cfg:
        return "not recorded"
    kind = f"LoRA r={cfg.get('lora_r', 8)}" if cfg.get("lora") else "full"
    parts = [kind]
    if "lr" in cfg:
        parts.append(f"lr {cfg['lr']:g}" + (f" {cfg['schedule']}" if cfg.get("schedule") else ""))
    if "tokens" in cfg:
        parts.append(f"{int(cfg['tokens']):,} tokens")
    if "batch_tokens" in cfg:
        parts.append(f"batch {int(cfg['batch_tokens']):,}")
    return ", ".join(parts)


# ----------------------------------------------------------------------------- groups


@dataclass
class GroupStudy:
    """Everything fitted for one (family, method, recipe) group."""

    family: str
    method: str
    law: str
    fit_sizes: list[str]
    heldout_sizes: list[str]
    runs: list = field(default_factory=list)  # fitting.Run, all sizes
    recipe: str = "unrecorded"
    recipe_config: dict = field(default_factory=dict)
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
        return f"{self.family}/{self.method}@{self.recipe}"

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
            "key": self.key, "family": self.family, "method": self.method, "law": self.law,
            "recipe": self.recipe, "recipe_config": self.recipe_config,
            "recipe_summary": recipe_summary(self.recipe_config),
            "fit_sizes": self.fit_sizes, "heldout_sizes": self.heldout_sizes,
            "runs": [r.run_id for r in self.runs],
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


def _posttrained(records: list[dict]) -> list[dict]:
    """Records usable for the law: pruned, post-trained, not diverged, with a trajectory."""
    out = []
    for r in records:
        pt = r.get("posttrain") or {}
        if r.get("method") in ("dense", "control") or r.get("status") != "ok" or pt.get("diverged"):
            continue
        if pt.get("trajectory") is not None:
            out.append(r)
    return out


def family_of(rec: dict) -> str:
    return rec["model"].get("family") or rec["model"]["spec"]


def control_curves(records: list[dict]) -> dict[tuple[str, str, str], tuple[list, list]]:
    """(family, size, recipe) -> (tokens, held-out loss) of the control run (unpruned base,
    post-trained with the recipe): the measured L0(D)."""
    out = {}
    for r in records:
        pt = r.get("posttrain") or {}
        if r.get("method") == "control" and r.get("status") == "ok" and pt.get("trajectory"):
            key = (family_of(r), str(r["model"].get("key")), recipe_label(recipe_config(r)))
            out[key] = ([c["tokens"] for c in pt["trajectory"]], [c["val_loss"] for c in pt["trajectory"]])
    return out


def run_from_record(rec: dict, control: tuple[list, list] | None = None):
    """One record -> one `fitting.Run` (held-out loss against post-training tokens).

    With `control` (the control run's tokens and losses) the run also carries `L0D`, the
    control's loss at each of its checkpoints (log-linear interpolation in tokens, exact where
    the checkpoints coincide, as they do for one recipe).
    """
    import numpy as np

    from fitting import Run

    pt = rec["posttrain"]
    traj = pt["trajectory"]
    if not traj:
        raise UsageError(f"record {rec['case_id']} has no post-training checkpoints; re-run it with a budget of at least one checkpoint interval")
    params = rec["params"]
    tokens = [c["tokens"] for c in traj]
    inputs = {"N0": float(params["before"]), "N": float(params["after"]),
              "rho": float(params["achieved_ratio"]), "L0": float(pt["L0"])}
    if control is not None:
        ct, cl = (np.asarray(v, dtype=float) for v in control)
        order = np.argsort(ct)
        inputs["L0D"] = np.interp(np.log(np.asarray(tokens, dtype=float)), np.log(ct[order]), cl[order])
    return Run(run_id=rec["case_id"], group=str(rec["model"]["key"]), inputs=inputs, tokens=tokens,
               loss=[c["val_loss"] for c in traj])


@dataclass
class _Group:
    runs: list = field(default_factory=list)
    recipe_config: dict = field(default_factory=dict)
    ratio_of: dict = field(default_factory=dict)


def collect_groups(records: list[dict]) -> dict[tuple[str, str, str], _Group]:
    """(family, method, recipe) -> runs, recipe config and nominal ratios."""
    controls = control_curves(records)
    groups: dict[tuple[str, str, str], _Group] = {}
    for rec in _posttrained(records):
        fam, recipe = family_of(rec), recipe_label(recipe_config(rec))
        g = groups.setdefault((fam, rec["method"], recipe), _Group(recipe_config=recipe_config(rec)))
        run = run_from_record(rec, controls.get((fam, str(rec["model"].get("key")), recipe)))
        g.runs.append(run)
        g.ratio_of[run.run_id] = float(rec.get("ratio", run.inputs["rho"]))
    return groups


def group_runs(records: list[dict]) -> dict[tuple[str, str, str], list]:
    """(family, method, recipe) -> runs, for every post-trained record."""
    return {k: g.runs for k, g in collect_groups(records).items()}


def sizes_by_params(runs) -> list[str]:
    """Model keys of a group, smallest base model first."""
    n0 = {}
    for r in runs:
        n0[r.group] = r.inputs["N0"]
    return sorted(n0, key=n0.get)


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


def study_group(family: str, method: str, runs: list, config: StudyConfig, recipe: str = "unrecorded",
                recipe_cfg: dict | None = None, ratio_of: dict | None = None) -> GroupStudy:
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
    g = GroupStudy(family, method, law, fit_sizes, heldout, runs, recipe=recipe, recipe_config=dict(recipe_cfg or {}),
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
        g.extrapolation[size] = {k: v for k, v in m.items() if k != "gap_per_run"}
        g.extrapolation[size]["extrapolation_error"] = m["mape"]
    if config.forms:
        g.forms = compare_forms(fit_runs, held_runs, search=config.search, units=_units_for(runs),
                                n_polish=config.n_polish)
        for f in g.forms:
            if f.get("heldout"):
                f["heldout"]["runaway"] = runaway(f["heldout"])
    for r in runs:
        point = {k: r.inputs[k] for k in ("N0", "N", "rho", "L0")}
        g.optimal.append({
            "run": r.run_id, "size": r.group, "rho": r.inputs["rho"],
            "margin": config.margin, "slope_threshold": config.slope_threshold,
            "tokens_to_margin": _target(tokens_to_margin, g.fit, point, config.margin),
            "tokens_to_slope": _target(tokens_to_slope, g.fit, point, config.slope_threshold),
            "trained_tokens": float(r.tokens[-1]),
        })
    return g


def _target(fn, result, point, arg) -> dict:
    """A token target, or an explicit 'not computable' when a degenerate fit overflows."""
    try:
        return fn(result, point, arg).to_dict()
    except ArithmeticError as exc:
        return {"tokens": None, "reachable": False, "limit": None, "loss": None,
                "reason": f"not computable from this fit ({exc.__class__.__name__})"}


@dataclass
class Study:
    config: StudyConfig
    groups: list[GroupStudy]

    def to_dict(self) -> dict:
        from fitting.identify import criterion

        return {"schema": FIT_SCHEMA, "law": self.config.law, "holdout": self.config.holdout,
                "margin": self.config.margin, "slope_threshold": self.config.slope_threshold,
                "bootstrap": self.config.bootstrap, "seed": self.config.seed,
                "search": {"grid": self.config.search, "n_polish": self.config.n_polish},
                "identifiability_criterion": criterion(), "runaway_factor": RUNAWAY_FACTOR,
                "groups": [g.to_dict() for g in self.groups]}

    def heldout_errors(self) -> dict[str, float]:
        """'family/method@recipe/size' -> extrapolation MAPE (percent)."""
        return {f"{g.key}/{size}": m["extrapolation_error"]
                for g in self.groups for size, m in g.extrapolation.items()}

    def heldout_lines(self) -> list[str]:
        """One line per held-out model for a terminal summary: the MAPE and gap error as
        measurements only when the fit is identified and did not run away."""
        from reports.markdown import fmt_pct

        lines = []
        for g in self.groups:
            ident = g.identifiability or {}
            for size, m in g.extrapolation.items():
                if m.get("runaway"):
                    what = m["runaway"]
                else:
                    gap = m.get("gap_final")
                    what = f"MAPE {fmt_pct(m['mape'] / 100)}, gap error at the final checkpoint " \
                           f"{'–' if gap is None else fmt_pct(gap / 100)}"
                if not ident.get("identified"):
                    what += f" (fit not identified: {'; '.join(ident.get('reasons') or ['no verdict'])})"
                lines.append(f"held-out {g.key}/{size}: {what}")
        return lines

    def group_names(self) -> list[str]:
        return [g.key for g in self.groups]


def run_study(records: list[dict], config: StudyConfig | None = None) -> Study:
    """Fit every (family, method, recipe) group of post-trained records."""
    config = config or StudyConfig()
    from fitting import available_laws

    if config.law not in available_laws():
        raise UsageError(f"unknown law {config.law!r}{did_you_mean(config.law, available_laws())}; "
                         f"choose one of {', '.join(available_laws())}")
    if config.search not in ("coarse", "full"):
        raise UsageError(f"search must be 'coarse' or 'full', got {config.search!r}")
    groups = collect_groups(records)
    if config.holdout:
        known = {r.group for g in groups.values() for r in g.runs}
        for size in config.holdout:
            if size not in known:
                raise UsageError(f"held-out size {size!r} is not in the records{did_you_mean(size, known)}; "
                                 f"sizes present: {', '.join(sorted(known)) or 'none'}")
    return Study(config, [study_group(f, m, g.runs, config, recipe=r, recipe_cfg=g.recipe_config, ratio_of=g.ratio_of)
                          for (f, m, r), g in sorted(groups.items())])


def case_group_names(cases) -> list[str]:
    """The group keys ('family/method@recipe') a run of `cases` can fit, before it runs.

    For gates built in pytest_configure: a scope naming none of these is a usage error
    before any case spends compute. Only post-trained, pruned cases form groups.
    """
    names = set()
    for c in cases:
        cfg = c.config() if callable(getattr(c, "config", None)) else dict(c)
        post = cfg.get("posttrain")
        if not post or cfg.get("method") in ("dense", "control"):
            continue
        names.add(f"{cfg.get('family') or cfg.get('model')}/{cfg['method']}@{recipe_label(dict(post))}")
    return sorted(names)
