"""The law fitted to a run's records: group, fit, judge, test, compare, predict.

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

The pieces: records to grouped runs in `bench.harness.fit_runs`, one group's fit and tests in
`bench.harness.group_fit`, recipe labels in `reports.recipes`. This module fits every group
(`fit_law`) into a `LawFit`, whose `to_dict` is fit.json.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.errors import UsageError, did_you_mean
from bench.harness.fit_runs import collect_groups
from bench.harness.group_fit import RUNAWAY_FACTOR, FitConfig, GroupFit, fit_group
from reports.records import Record

# Each group also keeps its curves ("curves", added within /2: readers of /2 ignore it), so the
# report draws its plots from fit.json alone.
FIT_SCHEMA = "prunebench.fit/2"


@dataclass
class LawFit:
    """The law fitted to every (family, method, recipe) group of a run's records."""

    config: FitConfig
    groups: list[GroupFit]
    # With the CE recipe and another one in the records: the cases compared and the joint form
    # (`bench.harness.recipe_fit`); None when the records hold one recipe.
    recipes: dict | None = None

    @property
    def seeds(self) -> list[int]:
        """The study seeds the records came from ([] when their study had one)."""
        return sorted({g.seed for g in self.groups if g.seed is not None})

    def to_dict(self) -> dict:
        from bench.harness.spread import seed_spread
        from fitting.identify import criterion

        groups = [g.to_dict() for g in self.groups]
        out = {"schema": FIT_SCHEMA, "law": self.config.law, "holdout": self.config.holdout,
               "margin": self.config.margin, "slope_threshold": self.config.slope_threshold,
               "bootstrap": self.config.bootstrap, "seed": self.config.seed,
               "search": {"grid": self.config.search, "n_polish": self.config.n_polish},
               "identifiability_criterion": criterion(), "runaway_factor": RUNAWAY_FACTOR,
               "groups": groups}
        if self.seeds:
            out["seeds"] = self.seeds
            out["spread"] = seed_spread(groups)
        if self.recipes:
            out["recipes"] = self.recipes
        return out

    def heldout_errors(self) -> dict[str, float]:
        """'family/method@recipe/size' -> extrapolation MAPE (percent)."""
        return {f"{g.key}/{size}" + (f"/s{g.seed}" if g.seed is not None else ""): m["extrapolation_error"]
                for g in self.groups for size, m in g.extrapolation.items()}

    def heldout_lines(self) -> list[str]:
        """One line per held-out model for a terminal summary: the MAPE and gap error as
        measurements only when the fit is identified and did not run away."""
        from reports.numbers import fmt_pct

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
                lines.append(f"held-out {g.key}/{size}{'' if g.seed is None else f' (seed {g.seed})'}: {what}")
        return lines

    def group_names(self) -> list[str]:
        return [g.key for g in self.groups]


def fit_law(records: list[Record], config: FitConfig | None = None) -> LawFit:
    """Fit every (family, method, recipe) group of post-trained records."""
    config = config or FitConfig()
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
    order = sorted(groups, key=lambda k: (k[0], k[1], k[2], -1 if k[3] is None else k[3]))
    fits = [fit_group(f, m, groups[(f, m, r, seed)].runs, config, recipe=r, recipe_cfg=groups[(f, m, r, seed)].recipe_config,
                      ratio_of=groups[(f, m, r, seed)].ratio_of, seed=seed) for f, m, r, seed in order]
    return LawFit(config, fits, _recipes(records, config))


def _recipes(records: list[Record], config: FitConfig) -> dict | None:
    """The recipes compared, when the records hold the CE recipe and another for the same cases."""
    from bench.harness.recipe_fit import compare_cases, joint_fits

    cases = compare_cases(records)
    if not cases:
        return None
    return {"cases": cases, "joint": joint_fits(records, config.holdout, config.bootstrap, config.seed,
                                                config.search, config.n_polish)}
