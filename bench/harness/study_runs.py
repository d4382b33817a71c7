"""Records to `fitting.Run`s, grouped by (model family, pruning method, post-training recipe).

A post-trained record becomes one run (held-out loss against post-training tokens), carrying
the control run's loss at each checkpoint (`L0D`) when the study has one for its size and
recipe. Runs of different recipes are different experiments and never share a group.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.errors import UsageError
from reports.recipes import recipe_config, recipe_label


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
