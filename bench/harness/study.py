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

The pieces: records to grouped runs in `bench.harness.study_runs`, one group's fit and tests in
`bench.harness.group_fit`, recipe labels in `reports.recipes`; their public names stay
importable from here. This module runs every group and writes the study as fit.json data.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.errors import UsageError, did_you_mean
from bench.harness.group_fit import (  # noqa: F401
    BOOTSTRAP_ENV, NM_LAW, RUNAWAY_FACTOR, GroupStudy, StudyConfig, default_bootstrap, runaway, study_group)
from bench.harness.study_runs import (  # noqa: F401
    collect_groups, control_curves, family_of, group_runs, run_from_record, sizes_by_params)
from reports.recipes import EXECUTION_ONLY, recipe_config, recipe_label, recipe_summary  # noqa: F401

FIT_SCHEMA = "prunebench.fit/2"


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
