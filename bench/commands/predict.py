"""`prunebench predict`: a pruned model's post-training curve and token budgets from a fit.json.

The question the P^2 law exists for: how many post-training tokens does my pruned model
need? Given a `fit.json` (written by `pytest bench` or `prunebench report`), one of its
groups, and the new model's N0 (parameters before pruning), rho (pruning ratio) and L0 (the
unpruned model's loss on the post-training data), this prints the predicted loss at a few
token counts and the tokens to come within a margin of the asymptote, each with the spread
over the fit's bootstrap replicates (whole runs resampled, every replicate searched afresh).

A model far outside the sizes the law was fitted on is refused unless `--force`: beyond
`--max-factor` (default 10x) of the fitted N0 range the law's size terms are extrapolated
further than any of its tests checked. A group whose fit is not identified is refused the
same way: its constants say nothing the data support.

Imports only numpy/scipy (through `fitting`), never torch.
"""

from __future__ import annotations

import json
import math
import sys

from fitting.optimal import EXTRAPOLATION_FACTOR

DEFAULT_MAX_FACTOR = EXTRAPOLATION_FACTOR  # the N0 range predictions are allowed, the tables' mark


def add_parser(p) -> None:
    p.add_argument("--fit", required=True, metavar="FIT.json", help="fit.json of an earlier run (its results directory)")
    p.add_argument("--group", default=None,
                   help="which group's law: a family, method, family/method or group key (needed when the fit has "
                        "several groups)")
    p.add_argument("--recipe", default=None,
                   help="which post-training recipe's law: a recipe label of the fit.json or an objective (ce, kd, "
                        "kd+ce); with the CE and a distillation recipe fitted together, the joint law's token "
                        "multiplier k is printed too")
    p.add_argument("--seed", type=int, default=None,
                   help="which study seed's fit (needed when the fit.json has several seeds)")
    p.add_argument("--n0", type=float, default=None, help="parameters of the model before pruning (raw count, e.g. 7e10)")
    p.add_argument("--rho", type=float, default=None, help="pruning ratio: fraction of parameters removed (e.g. 0.25)")
    p.add_argument("--l0", type=float, default=None, help="loss of the unpruned model on the post-training data (nats)")
    p.add_argument("--tokens", default=None, metavar="T1,T2,...",
                   help="post-training token counts to predict the loss at (default: 10 from the fitted range to 100x)")
    p.add_argument("--margin", type=float, default=None, help="relative margin to the asymptote (default: the fit's, 0.01)")
    p.add_argument("--max-factor", type=float, default=DEFAULT_MAX_FACTOR,
                   help=f"refuse N0 more than this factor outside the fitted N0 range (default {DEFAULT_MAX_FACTOR:g})")
    p.add_argument("--force", action="store_true",
                   help="predict beyond --max-factor, or from a fit that is not identified, and say so")
    p.add_argument("--json", action="store_true", help="print exactly one JSON object on stdout")


def load_fit(path: str) -> dict:
    """A fit.json of this prunebench's schema; anything else is a usage error naming the fix."""
    from pathlib import Path

    from bench.errors import UsageError
    from bench.harness.law_fit import FIT_SCHEMA

    p = Path(path)
    if not p.is_file():
        raise UsageError(f"--fit {p} does not exist; pass the fit.json of a results directory (pytest bench or "
                         "prunebench report writes it)")
    try:
        data = json.loads(p.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"--fit {p} is not valid JSON ({exc}); pass a fit.json written by prunebench") from None
    schema = data.get("schema") if isinstance(data, dict) else None
    if schema != FIT_SCHEMA:
        raise UsageError(f"--fit {p} has schema {schema!r}, this prunebench reads {FIT_SCHEMA!r}; re-render it with "
                         f"`prunebench report --results-dir DIR`")
    return data


def _objective(group: dict) -> str:
    return (group.get("recipe_config") or {}).get("objective", "ce")


def pick_group(fit: dict, selector: str | None, recipe: str | None = None, seed: int | None = None) -> dict:
    """The one fitted group that `--group`, `--recipe` and `--seed` name (each narrows the rest)."""
    from bench.errors import UsageError, did_you_mean
    from bench.studies.gates import group_matches

    fitted = [g for g in fit.get("groups", []) if g.get("fit") is not None]
    if not fitted:
        raise UsageError("the fit.json holds no fitted group; nothing to predict from")
    if recipe is not None:
        labels = sorted({g.get("recipe", "") for g in fitted})
        chosen = [g for g in fitted if recipe in (g.get("recipe"), _objective(g))]
        if not chosen:
            raise UsageError(f"--recipe {recipe!r} names no fitted recipe{did_you_mean(recipe, [*labels, 'ce', 'kd', 'kd+ce'])}; pass a "
                             f"label ({', '.join(labels)}) or an objective (ce, kd, kd+ce)")
        fitted = chosen
    seeds = sorted({g.get("seed") for g in fitted if g.get("seed") is not None})
    if seed is not None:
        if seed not in seeds:
            raise UsageError(f"--seed {seed} is not a study seed of the fit.json; its seeds: "
                             f"{', '.join(map(str, seeds)) or 'none (one seed: drop --seed)'}")
        fitted = [g for g in fitted if g.get("seed") == seed]
    keys = sorted({g["key"] for g in fitted})
    if selector is None and len(keys) > 1:
        raise UsageError(f"the fit.json has {len(keys)} groups; pass --group, one of: {', '.join(keys)}")
    chosen = [g for g in fitted if selector is None or group_matches(selector, g["key"])]
    if not chosen:
        raise UsageError(f"--group {selector!r} names no fitted group; pass one of: {', '.join(keys)}")
    if len({g["key"] for g in chosen}) > 1:
        raise UsageError(f"--group {selector!r} names {len({g['key'] for g in chosen})} groups; pass one of: "
                         f"{', '.join(sorted({g['key'] for g in chosen}))} (or --recipe)")
    if len(chosen) > 1:
        raise UsageError(f"{chosen[0]['key']} was fitted under {len(chosen)} study seeds; pass --seed, one of: "
                         f"{', '.join(str(g['seed']) for g in chosen)}")
    return chosen[0]


def joint_multipliers(fit: dict, group: dict) -> list[dict]:
    """The joint law's k (`p2-d-joint`) for the group's family and method under its seed: the
    entry of the group's own recipe when it is the other recipe, or every other recipe's when
    the group is the CE one."""
    out = []
    for e in (fit.get("recipes") or {}).get("joint") or []:
        if (e["family"], e["method"], e.get("seed")) != (group["family"], group["method"], group.get("seed")) \
                or e.get("k") is None:
            continue
        if group.get("recipe") in (e["recipe"], e.get("ce_recipe")):
            out.append({"recipe": e["recipe"], "ce_recipe": e.get("ce_recipe"), "k": e["k"],
                        "k_interval": e.get("k_interval"),
                        "identified": bool((e.get("identifiability") or {}).get("identified"))})
    return out


def _point(law, n0, rho, l0) -> dict:
    """The law's non-token inputs from the user's N0, rho and L0 (N = N0 (1 - rho))."""
    from bench.errors import UsageError

    given = {"N0": n0, "rho": rho, "L0": l0}
    flag = {"N0": "--n0", "rho": "--rho", "L0": "--l0"}
    need = [k for k in law.inputs if k != "D"]
    if "N" in need:
        need = [k for k in need if k != "N"] + [k for k in ("N0", "rho") if k not in need]
    unknown = [k for k in need if k not in given]
    if unknown:
        raise UsageError(f"law {law.name!r} needs inputs {unknown} that predict cannot take; use a fit of p2, p2-n or p2-nm")
    missing = [flag[k] for k in need if given[k] is None]
    if missing:
        raise UsageError(f"law {law.name!r} needs {', '.join(missing)} to predict (e.g. --n0 7e10 --rho 0.25 --l0 2.1)")
    point = {k: float(given[k]) for k in need}
    if "N" in law.inputs:
        point["N"] = point["N0"] * (1.0 - point["rho"])
    for k, v in point.items():
        if not (math.isfinite(v) and v > 0):
            raise UsageError(f"{flag.get(k, k)} must be a positive number, got {v!r}")
    if "rho" in point and point["rho"] >= 1:
        raise UsageError(f"--rho is the fraction of parameters removed and must be < 1, got {point['rho']!r}")
    return {k: v for k, v in point.items() if k in law.inputs}


def _range_check(group: dict, n0: float, factor: float, force: bool) -> str | None:
    """None inside the allowed range; else a note (with --force) or a usage error."""
    from bench.errors import UsageError

    lo, hi = group.get("data_range", {}).get("N0") or [min(group["n0"].values()), max(group["n0"].values())]
    if not factor >= 1:
        raise UsageError(f"--max-factor must be >= 1, got {factor!r}")
    if lo / factor <= n0 <= hi * factor:
        return None
    beyond = n0 / hi if n0 > hi else lo / n0
    msg = (f"N0={n0:.4g} is {beyond:.3g}x {'above' if n0 > hi else 'below'} the fitted N0 range "
           f"[{lo:.4g}, {hi:.4g}] of {group['key']}; predictions are refused beyond {factor:g}x of it")
    if not force:
        raise UsageError(msg + " (pass --force to extrapolate anyway, or raise --max-factor)")
    return msg + "; extrapolated anyway (--force)"


def _band(values, level: float):
    import numpy as np

    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=float)
    if v.size == 0:
        return None
    lo, hi = 100 * (1 - level) / 2, 100 * (1 + level) / 2
    return [float(np.percentile(v, lo)), float(np.median(v)), float(np.percentile(v, hi))]


def predict(args) -> dict:
    """Everything `predict` reports, as one JSON-able dict."""
    import numpy as np

    from bench.errors import UsageError
    from fitting import FitResult, get_law, tokens_to_margin
    from fitting.optimal import outside_factor

    fit = load_fit(args.fit)
    group = pick_group(fit, args.group, getattr(args, "recipe", None), getattr(args, "seed", None))
    law = get_law(group["law"])
    point = _point(law, args.n0, args.rho, args.l0)
    notes = []
    n0 = point.get("N0", args.n0)
    if n0 is not None:
        note = _range_check(group, float(n0), args.max_factor, args.force)
        if note:
            notes.append(note)
    ident = group.get("identifiability") or {}
    if not ident.get("identified"):
        why = "; ".join(ident.get("reasons") or ["no verdict"])
        if not args.force:
            raise UsageError(f"the fit of {group['key']} is not identified ({why}); its predictions are not supported "
                             "by the data (pass --force to see them anyway)")
        notes.append(f"the fit is not identified ({why}); shown because of --force")
    main = FitResult.from_dict(group["fit"])
    margin = fit.get("margin", 0.01) if args.margin is None else args.margin
    if args.tokens:
        try:
            tokens = [float(t) for t in args.tokens.split(",") if t.strip()]
        except ValueError:
            raise UsageError(f"--tokens takes comma-separated token counts such as 1e8,1e9, got {args.tokens!r}") from None
        if not tokens or any(not (math.isfinite(t) and t > 0) for t in tokens):
            raise UsageError(f"--tokens must be positive token counts, got {args.tokens!r}")
    else:
        d_lo, d_hi = group.get("data_range", {}).get("D") or [1e6, 1e9]
        tokens = [float(t) for t in np.geomspace(d_lo, 100 * d_hi, 10)]
    curve = main.predict({**point, "D": tokens})
    target = tokens_to_margin(main, point, margin).to_dict()
    d_lo, d_hi = group.get("data_range", {}).get("D") or [None, None]

    def beyond(t: float | None) -> float | None:
        """The factor a token count lies outside the fitted D range, when more than the rule's."""
        factor = None if t is None else outside_factor(t, d_lo, d_hi)
        return factor if factor is not None and factor > EXTRAPOLATION_FACTOR else None

    boot = group.get("bootstrap") or {}
    reps = boot.get("replicates") or {}
    level = float(boot.get("level", 0.95))
    replicate_curves, replicate_tokens = [], []
    if reps:
        n = len(next(iter(reps.values())))
        for i in range(n):
            rep = FitResult.from_dict(group["fit"], params={k: v[i] for k, v in reps.items()})
            with np.errstate(all="ignore"):
                replicate_curves.append(rep.predict({**point, "D": tokens}))
            try:
                replicate_tokens.append(tokens_to_margin(rep, point, margin).tokens)
            except ArithmeticError:
                replicate_tokens.append(None)
    else:
        notes.append("no uncertainty: the fit.json holds no bootstrap replicates (re-render with --bootstrap N)")
    rows = []
    for j, t in enumerate(tokens):
        rows.append({"tokens": t, "loss": float(curve[j]), "extrapolated": beyond(t),
                     "band": _band([float(c[j]) for c in replicate_curves], level) if replicate_curves else None})
    return {
        "group": group["key"], "law": law.name, "formula": law.describe(), "inputs": point,
        "identified": bool(ident.get("identified")), "identifiability": ident.get("reasons") or [],
        "fitted_n0_range": group.get("data_range", {}).get("N0"), "max_factor": args.max_factor,
        "curve": rows, "level": level if reps else None, "replicates": len(replicate_curves),
        "tokens_to_margin": {**target, "margin": margin, "extrapolated": beyond(target.get("tokens")),
                             "band": _band(replicate_tokens, level) if replicate_tokens else None,
                             "replicates_unreachable": sum(t is None for t in replicate_tokens)},
        "recipe": group.get("recipe"), "seed": group.get("seed"),
        "joint": joint_multipliers(fit, group),
        "notes": notes,
    }


def _fmt_beyond(factor) -> str:
    return "" if factor is None else f"  (extrapolated: {factor:.3g}x outside the fitted tokens)"


def _fmt_band(band, fmt) -> str:
    return "" if not band else f"  [{fmt(band[0])}, {fmt(band[2])}]"


def run(args) -> int:
    from reports.render import strict_json
    from reports.numbers import fmt_tokens

    out = predict(args)
    if args.json:
        json.dump(strict_json(out), sys.stdout, sort_keys=True, allow_nan=False, default=float)
        sys.stdout.write("\n")
        return 0
    inputs = ", ".join(f"{k}={v:.6g}" for k, v in out["inputs"].items())
    print(f"{out['group']}: law {out['law']} at {inputs}")
    ci = f" ({100 * out['level']:.0f}% band over {out['replicates']} bootstrap replicates)" if out["level"] else ""
    print(f"  predicted held-out loss{ci}:")
    for row in out["curve"]:
        print(f"    {fmt_tokens(row['tokens']):>8} tokens: {row['loss']:.4f}{_fmt_band(row['band'], lambda x: f'{x:.4f}')}"
              f"{_fmt_beyond(row['extrapolated'])}")
    t = out["tokens_to_margin"]
    if t["reachable"]:
        what = f"{fmt_tokens(t['tokens'])} tokens{_fmt_band(t['band'], fmt_tokens)}{_fmt_beyond(t['extrapolated'])}"
    else:
        what = f"never ({t['reason']})"
    print(f"  tokens to within {100 * t['margin']:g}% of the asymptote: {what}")
    if t.get("replicates_unreachable"):
        print(f"  ({t['replicates_unreachable']} replicates predict it is never reached)")
    for j in out["joint"]:
        ci = "" if not j["k_interval"] else f" [{j['k_interval'][0]:.3g}, {j['k_interval'][1]:.3g}]"
        verdict = "" if j["identified"] else " (the joint fit is not identified)"
        other = j["recipe"] != out["recipe"]
        what = (f"under {j['recipe']} each token counts k={j['k']:.3g}{ci} CE tokens{verdict}"
                + (f": about {fmt_tokens(t['tokens'] / j['k'])} tokens to the same margin" if other and t["reachable"] else ""))
        print(f"  joint law p2-d-joint: {what}")
    for note in out["notes"]:
        print(f"  note: {note}")
    return 0
