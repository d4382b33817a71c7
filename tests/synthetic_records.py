"""Post-training records whose loss curves follow a known P^2 law, for report and gate tests.

The records have exactly the shape the nano profile writes, so the study, the report and the
gates see what they see in a real run; only the numbers come from the law instead of a
training loop, which makes the expected fit quality known in advance.
"""

from __future__ import annotations

import numpy as np

from bench.sources.records import stamp
from fitting.synthetic import make_runs
from reports.records import Record


def cases_of(name: str, full_eval: bool = False):
    """The cases of a built-in study or a study file."""
    from bench.studies import load_study, study_cases

    return study_cases(load_study(name), full_eval=full_eval)


def edited(rec: Record, change) -> Record:
    """`rec` with its JSON document changed in place by `change(doc)` (records are frozen)."""
    import copy

    doc = copy.deepcopy(rec.to_json())
    change(doc)
    return Record.from_json(doc)


def new_record(case_id: str, **fields) -> Record:
    """A record as the runner stamps it (created time fixed, for golden files)."""
    return Record.from_json({"schema": "prunebench.record/2", "case_id": case_id, **stamp(), **fields,
                             "created": "2026-01-01T00:00:00+00:00"})

# Plausible P^2 constants (fit parameterisation; N0 in millions, D in millions of tokens).
TRUE_P2 = {"n_c": -2.0, "d_c": -3.0, "e": -4.0, "alpha": 0.3, "beta": 0.6, "gamma": -0.7, "delta": 0.2}
TRUE_P2NM = {k: v for k, v in TRUE_P2.items() if k != "gamma"}
# Constants the five sizes of SIZES5 identify (a size term that varies 15x over the fitted
# N0, well apart from E); with TRUE_P2, E and N_C / N0**alpha trade off and E is not identified.
IDENTIFIABLE_P2 = dict(TRUE_P2, e=-2.0, alpha=1.0, n_c=-1.0)
SIZES = (2e5, 5e5, 1.2e6, 3e6)
#: Five sizes spanning 35x: 4 fit sizes for the 3 size parameters, and one held out.
SIZES5 = (2e5, 5e5, 1.2e6, 3e6, 7e6)
TOKENS = tuple(np.geomspace(1.6e4, 1.3e5, 8))
# The declared post-training recipe of a nano case (bench/studies/nano.toml's [posttrain]).
RECIPE = {"tokens": 131072, "checkpoint_every": 16384, "batch_tokens": 4096, "micro_batch_tokens": 4096,
          "seq_len": 128, "lr": 5e-4, "schedule": "constant", "warmup_tokens": 16384, "eval_windows": 64, "seed": 0}
LORA_RECIPE = dict(RECIPE, lora=True, lr=5e-3)


def _record(run, family: str, method: str, key: str, ratio: float, recipe: dict | None = None,
            profile: str = "synth") -> Record:
    n0 = run.inputs["N0"]
    n = round(n0 * (1 - ratio))
    traj = [{"tokens": float(t), "train_loss": float(l) * 1.01, "val_loss": float(l), "wall_s": float(i)}
            for i, (t, l) in enumerate(zip(run.tokens, run.loss))]
    case_id = f"{profile}-{key}-{method}-{ratio:g}"
    rec = new_record(case_id, profile=profile, method=method, label=method if method != "nm" else "2of4-sparsegpt",
                     ratio=ratio, status="ok", fingerprint="synthetic",
                     model={"spec": f"synth:{key}", "key": key, "family": family},
                     params={"before": int(n0), "after": int(n), "achieved_ratio": 1 - n / n0},
                     # Perplexities consistent with the curve: dense at L0, pruned above the first
                     # checkpoint, post-trained at the last one.
                     ppl_dense={"wikitext2:128": {"ppl": float(np.exp(run.inputs["L0"]))}},
                     ppl_pruned={"wikitext2:128": {"ppl": float(np.exp(run.loss[0] + 0.5))}},
                     ppl={"wikitext2:128": {"ppl": float(np.exp(run.loss[-1]))}},
                     posttrain={"L0": float(run.inputs["L0"]), "trajectory": traj, "diverged": False},
                     config={"posttrain": dict(RECIPE if recipe is None else recipe), "profile": profile})
    return rec


def control_record(key: str, n0: float, family: str = "synth-llama", recipe: dict | None = None,
                   profile: str = "synth", improvement: float = 0.002) -> Record:
    """The control case of one size: the unpruned base post-trained, its loss easing from L0
    by `improvement` (relative) over the run, as a base near its plateau does."""
    from fitting.synthetic import unpruned_loss

    l0 = unpruned_loss(n0)  # the L0 make_runs gives the pruned runs of this size
    t = np.asarray(TOKENS)
    loss = l0 * (1 - improvement * np.log(t / t[0]) / np.log(t[-1] / t[0]))
    traj = [{"tokens": float(a), "train_loss": float(b), "val_loss": float(b), "wall_s": float(i)}
            for i, (a, b) in enumerate(zip(t, loss))]
    rec = new_record(f"{profile}-{key}-control", profile=profile, method="control", label="control", ratio=0.0,
                     status="ok", fingerprint="synthetic", model={"spec": f"synth:{key}", "key": key, "family": family},
                     params={"before": int(n0), "after": int(n0), "achieved_ratio": 0.0},
                     posttrain={"L0": float(l0), "trajectory": traj, "diverged": False,
                                "control_improvement": float((l0 - loss[-1]) / l0)},
                     config={"posttrain": dict(RECIPE if recipe is None else recipe), "profile": profile})
    return rec


def synthetic_records(noise: float = 0.0, seed: int = 0, family: str = "synth-llama", recipe: dict | None = None,
                      profile: str = "synth", controls: bool = False, nm: bool = True,
                      true_p2: dict | None = None, sizes=SIZES, width: bool = False,
                      token_factor: float = 1.0) -> list[Record]:
    """3 depth ratios and one 2:4 run per size, curves from TRUE_P2 / TRUE_P2NM.

    Args:
        recipe: the declared post-training recipe (default `RECIPE`); records of different
            recipes belong to different groups.
        profile: the profile name, also the case id prefix.
        controls: add a control record per size (the measured L0(D)).
        nm: add the 2:4 runs.
        true_p2: the depth curves' law parameters (default TRUE_P2).
        sizes: base sizes N0 (keys s1, s2, ...); the largest is the default held-out size.
        width: add a width group drawn like depth (another noise seed), as in the nano study.
        token_factor: each token of these runs is worth this many of the law's tokens: the
            curves are the law's at token_factor x D, recorded at D (a recipe such as
            distillation whose D_eff = k D, for the joint form `p2-d-joint`).
    """
    import dataclasses

    keys = [f"s{i + 1}" for i in range(len(sizes))]
    units = {"N0": 1e6}
    records = []
    for method, offset in (("depth", 0), ("width", 2))[: 2 if width else 1]:
        for run in make_runs("p2", true_p2 or TRUE_P2, sizes=sizes, ratios=(0.15, 0.25, 0.35),
                             tokens=np.asarray(TOKENS) * token_factor, noise=noise, seed=seed + offset, units=units):
            run = dataclasses.replace(run, tokens=np.asarray(TOKENS))
            key = keys[list(sizes).index(run.inputs["N0"])]
            records.append(_record(run, family, method, key, run.inputs["rho"], recipe, profile))
    if nm:
        for run in make_runs("p2-nm", TRUE_P2NM, sizes=sizes, tokens=TOKENS, noise=noise, seed=seed + 1, units=units):
            key = keys[list(sizes).index(run.inputs["N0"])]
            records.append(_record(run, family, "nm", key, 0.5, recipe, profile))
    if controls:
        records += [control_record(k, n0, family, recipe, profile) for k, n0 in zip(keys, sizes)]
    return records
