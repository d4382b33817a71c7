"""Every law figure with its spread over the study seeds.

A figure of the law (an extrapolation MAPE, a gap error, a held-out R², an identifiability
verdict) is one draw of the zoo's pre-training and of post-training. With several study seeds
the law is fitted once per seed (`bench.harness.law_fit`), and `seed_spread` summarises each
(family, method, recipe) group's figures over its seeds: per generalisation test and target,
each measure's mean, sample standard deviation, minimum and maximum and the per-seed values,
and how many seeds identified the fit. A run-away prediction is never averaged in: it is
counted, and the seed is named.

Pure functions of fit.json's group dicts, so a report re-renders the spread from fit.json.
"""

from __future__ import annotations

import math
from statistics import mean, stdev

#: The measures a test target carries that the spread summarises, in the report's order.
MEASURES = ("mape", "gap_mean", "gap_final", "gap_final_worst", "r2")


def summary(values: dict) -> dict:
    """{seed: value} -> mean, sd (sample; None with one value), min, max and the values."""
    vals = [v for v in values.values() if v is not None and math.isfinite(v)]
    if not vals:
        return {"mean": None, "sd": None, "min": None, "max": None, "n": 0, "per_seed": values}
    return {"mean": mean(vals), "sd": stdev(vals) if len(vals) > 1 else None, "min": min(vals), "max": max(vals),
            "n": len(vals), "per_seed": values}


def seed_spread(groups: list[dict]) -> list[dict]:
    """Per group key, the spread of every test figure over the seeds its fits came from.

    Args:
        groups: fit.json's group dicts (each with its `seed`).
    Returns:
        One dict per key: `key`, `seeds`, `identified` (seeds whose fit is identified), `of`,
        and `tests`: test -> target size -> measure -> `summary`, with `runaway`: the seeds
        whose prediction ran away (left out of the figures).
    """
    by_key: dict[str, list[dict]] = {}
    for g in groups:
        by_key.setdefault(g["key"], []).append(g)
    out = []
    for key, fits in sorted(by_key.items()):
        seeds = [g["seed"] for g in fits]
        identified = [g["seed"] for g in fits if (g.get("identifiability") or {}).get("identified")]
        tests: dict = {}
        for test in ("larger-n0", "larger-d", "higher-rho"):
            sizes = sorted({s for g in fits for s in ((g.get("tests") or {}).get(test) or {}).get("targets", {})})
            for size in sizes:
                per = {g["seed"]: ((g.get("tests") or {}).get(test) or {}).get("targets", {}).get(size) for g in fits}
                runaway = sorted(s for s, m in per.items() if m and m.get("runaway"))
                cell = {m: summary({s: (v.get(m) if v and not v.get("runaway") else None) for s, v in per.items()})
                        for m in MEASURES}
                cell["runaway"] = runaway
                tests.setdefault(test, {})[size] = cell
        out.append({"key": key, "seeds": seeds, "identified": identified, "of": len(fits), "tests": tests})
    return out
