"""Records to `fitting.Run`s, grouped by (model family, pruning method, post-training recipe).

A post-trained record becomes one run (held-out loss against post-training tokens), carrying
the control run's loss at each checkpoint (`L0D`) when the results have one for its size and
recipe. Runs of different recipes are different experiments and never share a group.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.errors import UsageError
from reports.recipes import recipe_label
from reports.records import Record


def control_curves(records: list[Record]) -> dict[tuple, tuple[list, list]]:
    """(family, size, recipe, seed) -> (tokens, held-out loss) of the control run (unpruned base,
    post-trained with the recipe, under the same study seed): the measured L0(D)."""
    out = {}
    for r in records:
        curve = r.curve() if r.method == "control" else None
        if curve is not None:
            out[(r.family, str(r.model.key), recipe_label(r.recipe_config()), study_seed(r))] = curve
    return out


def run_from_record(rec: Record, control: tuple[list, list] | None = None):
    """One record with a usable curve (`Record.curve`) -> one `fitting.Run`.

    With `control` (the control run's tokens and losses) the run also carries `L0D`, the
    control's loss at each of its checkpoints (log-linear interpolation in tokens, exact where
    the checkpoints coincide, as they do for one recipe).
    """
    import numpy as np

    from fitting import Run

    tokens, loss = rec.curve()
    inputs = {"N0": float(rec.params.before), "N": float(rec.params.after),
              "rho": float(rec.params.achieved_ratio), "L0": float(rec.posttrain.L0)}
    if control is not None:
        ct, cl = (np.asarray(v, dtype=float) for v in control)
        order = np.argsort(ct)
        inputs["L0D"] = np.interp(np.log(np.asarray(tokens, dtype=float)), np.log(ct[order]), cl[order])
    return Run(run_id=rec.case_id, group=str(rec.model.key), inputs=inputs, tokens=tokens, loss=loss)


@dataclass
class RunGroup:
    """One (family, method, recipe) group: its runs, the recipe as declared, nominal ratios."""

    runs: list = field(default_factory=list)
    recipe_config: dict = field(default_factory=dict)
    ratio_of: dict = field(default_factory=dict)


def study_seed(rec: Record) -> int | None:
    """The study seed a record was made under (None: its study had one)."""
    return (rec.config or {}).get("seed")


def collect_groups(records: list[Record]) -> dict[tuple, RunGroup]:
    """(family, method, recipe, seed) -> its group, for every pruned record with a usable curve.

    Records of different study seeds never share a group: each seed is its own draw of the
    zoo and of post-training, and the law is fitted to each (`bench.harness.law_fit`).
    """
    controls = control_curves(records)
    groups: dict[tuple, RunGroup] = {}
    for rec in records:
        pt = rec.posttrain
        if rec.unpruned or pt is None or not rec.ok or pt.diverged:
            continue
        if not pt.trajectory:
            raise UsageError(f"record {rec.case_id} has no post-training checkpoints; re-run it with a budget of "
                             f"at least one checkpoint interval")
        recipe = recipe_label(rec.recipe_config())
        seed = study_seed(rec)
        g = groups.setdefault((rec.family, rec.method, recipe, seed), RunGroup(recipe_config=rec.recipe_config()))
        run = run_from_record(rec, controls.get((rec.family, str(rec.model.key), recipe, seed)))
        g.runs.append(run)
        g.ratio_of[run.run_id] = float(rec.ratio if rec.ratio is not None else run.inputs["rho"])
    return groups


def group_runs(records: list[Record]) -> dict[tuple, list]:
    """(family, method, recipe, seed) -> runs, for every post-trained record."""
    return {k: g.runs for k, g in collect_groups(records).items()}


def sizes_by_params(runs) -> list[str]:
    """Model keys of a group, smallest base model first."""
    n0 = {}
    for r in runs:
        n0[r.group] = r.inputs["N0"]
    return sorted(n0, key=n0.get)
