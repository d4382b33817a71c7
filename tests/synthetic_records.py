"""Post-training records whose loss curves follow a known P^2 law, for report and gate tests.

The records have exactly the shape the nano profile writes, so the study, the report and the
gates see what they see in a real run; only the numbers come from the law instead of a
training loop, which makes the expected fit quality known in advance.
"""

from __future__ import annotations

import numpy as np

from bench.records import new_record
from fitting.synthetic import make_runs

# Plausible P^2 constants (fit parameterisation; N0 in millions, D in millions of tokens).
TRUE_P2 = {"n_c": -2.0, "d_c": -3.0, "e": -4.0, "alpha": 0.3, "beta": 0.6, "gamma": -0.7, "delta": 0.2}
TRUE_P2NM = {k: v for k, v in TRUE_P2.items() if k != "gamma"}
SIZES = (2e5, 5e5, 1.2e6, 3e6)
KEYS = ("s1", "s2", "s3", "s4")
TOKENS = tuple(np.geomspace(1.6e4, 1.3e5, 8))


def _record(run, family: str, method: str, key: str, ratio: float) -> dict:
    n0 = run.inputs["N0"]
    n = round(n0 * (1 - ratio))
    traj = [{"tokens": float(t), "train_loss": float(l) * 1.01, "val_loss": float(l), "wall_s": float(i)}
            for i, (t, l) in enumerate(zip(run.tokens, run.loss))]
    case_id = f"synth-{key}-{method}-{ratio:g}"
    rec = new_record(case_id, profile="synth", method=method, label=method if method != "nm" else "2of4-sparsegpt",
                     ratio=ratio, status="ok", fingerprint="synthetic",
                     model={"spec": f"synth:{key}", "key": key, "family": family},
                     params={"before": int(n0), "after": int(n), "achieved_ratio": 1 - n / n0},
                     # Perplexities consistent with the curve: dense at L0, pruned above the first
                     # checkpoint, post-trained at the last one.
                     ppl_dense={"wikitext2:128": {"ppl": float(np.exp(run.inputs["L0"]))}},
                     ppl_pruned={"wikitext2:128": {"ppl": float(np.exp(run.loss[0] + 0.5))}},
                     ppl={"wikitext2:128": {"ppl": float(np.exp(run.loss[-1]))}},
                     posttrain={"L0": float(run.inputs["L0"]), "trajectory": traj, "diverged": False})
    rec["created"] = "2026-01-01T00:00:00+00:00"  # fixed, for golden files
    return rec


def synthetic_records(noise: float = 0.0, seed: int = 0, family: str = "synth-llama") -> list[dict]:
    """3 depth ratios and one 2:4 run per size, curves from TRUE_P2 / TRUE_P2NM."""
    units = {"N0": 1e6}
    records = []
    depth = make_runs("p2", TRUE_P2, sizes=SIZES, ratios=(0.15, 0.25, 0.35), tokens=TOKENS,
                      noise=noise, seed=seed, units=units)
    for run in depth:
        key = KEYS[SIZES.index(run.inputs["N0"])]
        records.append(_record(run, family, "depth", key, run.inputs["rho"]))
    nm = make_runs("p2-nm", TRUE_P2NM, sizes=SIZES, tokens=TOKENS, noise=noise, seed=seed + 1, units=units)
    for run in nm:
        key = KEYS[SIZES.index(run.inputs["N0"])]
        records.append(_record(run, family, "nm", key, 0.5))
    return records
