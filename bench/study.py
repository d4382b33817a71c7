"""The scaling-law study over stored records: group, fit, validate, extrapolate, predict.

Records of post-trained cases become `fitting.Run`s (one loss curve each: held-out loss
against post-training tokens). Runs are grouped by model family and pruning method, because
the paper fits each family and method separately. For every group:

* the law is fitted on the runs of the *fit sizes* (all but the held-out sizes), with
  bootstrap intervals over whole runs;
* the within-run protocol (first 80% of checkpoints fit, last 20% validate) is scored;
* the extrapolation protocol predicts the held-out sizes' whole curves (default: the largest
  size of each family), whose MAPE is the number the CI gate checks;
* the tokens each pruned model needs to come within a margin of its asymptote, and to bring
  the marginal gain per token under a threshold, are predicted from the fit.

No torch here: `prunebench fit` and `prunebench report` run without loading a model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.errors import UsageError, did_you_mean

# Law used for 2:4 groups when the study's law is rho-based: for N:M the ratio is fixed, so
# the paper (Eq. 7) drops the rho factor.
NM_LAW = {"p2": "p2-nm", "p2-n": "p2-nm"}


@dataclass
class StudyConfig:
    """How to fit: law, which sizes to hold out, and the token questions to answer."""

    law: str = "p2"
    holdout: tuple[str, ...] | None = None  # model keys; None = the largest size per family
    margin: float = 0.01  # relative margin to the asymptote for "optimal tokens"
    slope_threshold: float = 1e-8  # loss per token for the marginal-gain criterion
    bootstrap: int = 100
    seed: int = 0


@dataclass
class GroupStudy:
    """Everything fitted for one (family, method) group."""

    family: str
    method: str
    law: str
    fit_sizes: list[str]
    heldout_sizes: list[str]
    runs: list = field(default_factory=list)  # fitting.Run, all sizes
    fit: object = None  # FitResult on the fit sizes
    bootstrap: object = None  # BootstrapResult or None
    within_run: dict | None = None
    extrapolation: dict = field(default_factory=dict)  # size -> metrics
    optimal: list[dict] = field(default_factory=list)
    error: str | None = None  # why the group could not be fitted, if it could not
    notes: list[str] = field(default_factory=list)  # steps after the fit that could not run

    @property
    def key(self) -> str:
        return f"{self.family}/{self.method}"

    def to_dict(self) -> dict:
        return {
            "family": self.family, "method": self.method, "law": self.law,
            "fit_sizes": self.fit_sizes, "heldout_sizes": self.heldout_sizes,
            "runs": [r.run_id for r in self.runs],
            "fit": self.fit.to_dict() if self.fit is not None else None,
            "bootstrap": self.bootstrap.to_dict() if self.bootstrap is not None else None,
            "within_run": self.within_run, "extrapolation": self.extrapolation,
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


def run_from_record(rec: dict):
    """One record -> one `fitting.Run` (held-out loss against post-training tokens)."""
    from fitting import Run

    pt = rec["posttrain"]
    traj = pt["trajectory"]
    if not traj:
        raise UsageError(f"record {rec['case_id']} has no post-training checkpoints; re-run it with a budget of at least one checkpoint interval")
    params = rec["params"]
    return Run(
        run_id=rec["case_id"], group=str(rec["model"]["key"]),
        inputs={"N0": float(params["before"]), "N": float(params["after"]),
                "rho": float(params["achieved_ratio"]), "L0": float(pt["L0"])},
        tokens=[c["tokens"] for c in traj], loss=[c["val_loss"] for c in traj])


def group_runs(records: list[dict]) -> dict[tuple[str, str], list]:
    """(family, method) -> runs, for every post-trained record."""
    groups: dict[tuple[str, str], list] = {}
    for rec in _posttrained(records):
        key = (rec["model"].get("family") or rec["model"]["spec"], rec["method"])
        groups.setdefault(key, []).append(run_from_record(rec))
    return groups


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
    return {"N0": 1e6} if biggest < 1e8 else {}


def _law_inputs_units(law_name: str, units: dict) -> dict:
    from fitting import get_law

    law = get_law(law_name)
    return {k: v for k, v in units.items() if k in law.inputs}


def study_group(family: str, method: str, runs: list, config: StudyConfig) -> GroupStudy:
    """Fit, validate and extrapolate one group; failures are recorded, not raised."""
    from fitting import bootstrap, evaluate_fit, fit, tokens_to_margin, tokens_to_slope, within_run

    law = NM_LAW.get(config.law, config.law) if method == "nm" else config.law
    sizes = sizes_by_params(runs)
    if config.holdout is None:
        heldout = sizes[-1:] if len(sizes) > 1 else []
    else:
        heldout = [s for s in config.holdout if s in sizes]
    fit_sizes = [s for s in sizes if s not in heldout]
    g = GroupStudy(family, method, law, fit_sizes, heldout, runs)
    units = _law_inputs_units(law, _units_for(runs))
    fit_runs = [r for r in runs if r.group in fit_sizes]
    try:
        g.fit = fit(fit_runs, law, units=units)
    except UsageError as exc:
        g.error = str(exc)
        return g
    # Each later step can fail on its own (a bootstrap resample or the 80% within-run split
    # may have fewer points than parameters); that is recorded, and the rest still runs.
    try:
        if config.bootstrap:
            g.bootstrap = bootstrap(fit_runs, law, n=config.bootstrap, seed=config.seed, units=units, estimate=g.fit)
    except UsageError as exc:
        g.notes.append(f"bootstrap: {exc}")
    try:
        g.within_run = within_run(fit_runs, law, units=units).to_dict()["validation"]
    except UsageError as exc:
        g.notes.append(f"within-run: {exc}")
    for size in heldout:
        m = evaluate_fit(g.fit, [r for r in runs if r.group == size])
        m["extrapolation_error"] = m["mape"]
        g.extrapolation[size] = m
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
        return {"schema": "prunebench.fit/1", "law": self.config.law, "holdout": self.config.holdout,
                "margin": self.config.margin, "slope_threshold": self.config.slope_threshold,
                "bootstrap": self.config.bootstrap, "seed": self.config.seed,
                "groups": [g.to_dict() for g in self.groups]}

    def heldout_errors(self) -> dict[str, float]:
        """'family/method/size' -> extrapolation MAPE (percent), for the gate."""
        return {f"{g.key}/{size}": m["extrapolation_error"]
                for g in self.groups for size, m in g.extrapolation.items()}


def run_study(records: list[dict], config: StudyConfig | None = None) -> Study:
    """Fit every (family, method) group of post-trained records."""
    config = config or StudyConfig()
    from fitting import available_laws

    if config.law not in available_laws():
        raise UsageError(f"unknown law {config.law!r}{did_you_mean(config.law, available_laws())}; "
                         f"choose one of {', '.join(available_laws())}")
    groups = group_runs(records)
    if config.holdout:
        known = {r.group for runs in groups.values() for r in runs}
        for size in config.holdout:
            if size not in known:
                raise UsageError(f"held-out size {size!r} is not in the records{did_you_mean(size, known)}; "
                                 f"sizes present: {', '.join(sorted(known)) or 'none'}")
    return Study(config, [study_group(f, m, runs, config) for (f, m), runs in sorted(groups.items())])
