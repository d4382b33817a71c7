"""`prunebench fit`: fit a scaling law to a table of points, or to stored post-training records.

Imports only numpy/scipy (through `fitting`), never torch.
"""

from __future__ import annotations

import json
import sys

from reports.render import strict_json


def _columns_help() -> str:
    from fitting.laws import available_laws, get_law

    per_law = "; ".join(f"{n}: {','.join(get_law(n).inputs)},L" for n in available_laws())
    return (
        "comma-separated column specs mapped, in order, to the law's inputs and then the loss "
        f"({per_law}). A spec is a column name or an expression over [bracketed] columns, "
        "e.g. 'Model Size,[Training FLOP]/(6*[Model Size]),loss' for Chinchilla's N,D,L. "
        "Raw units (parameters, tokens); the law's units are applied by the fit"
    )


def add_parser(p) -> None:
    from fitting.laws import available_laws

    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--points", metavar="FILE.csv", help="fit a CSV table of points (header row required)")
    src.add_argument("--results-dir", metavar="DIR", help="fit the post-training records of a results directory")
    p.add_argument("--law", default="p2", help=f"law form ({', '.join(available_laws())}; default p2)")
    p.add_argument("--columns", help=_columns_help())
    p.add_argument("--run-column", default=None,
                   help="column naming each point's run (bootstrap draws whole runs); default: every row is a run")
    p.add_argument("--exclude-top-loss", type=int, default=0, metavar="K",
                   help="drop rows whose loss is >= the K-th largest (Besiroglu et al. use K=5 on Chinchilla)")
    p.add_argument("--units", default=None, metavar="NAME=SCALE,...",
                   help="override the law's unit scales, e.g. 'N=1,D=1' for raw counts")
    p.add_argument("--bootstrap", type=int, default=0, metavar="N", help="N bootstrap replicates over runs (default 0: none)")
    p.add_argument("--search", choices=("full", "coarse"), default=None,
                   help="starts of the multistart search, used for the fit and for every bootstrap replicate alike: "
                        "the law's full grid (default for --points) or its coarse grid (default for --results-dir)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--level", type=float, default=0.95, help="bootstrap interval coverage (default 0.95)")
    p.add_argument("--holdout", action="append", default=None, metavar="SIZE",
                   help="--results-dir: model size key to hold out and predict (repeatable; default: the largest per family)")
    p.add_argument("--json", action="store_true", help="print exactly one JSON object on stdout")


def _parse_units(spec: str | None) -> dict[str, float]:
    from bench.errors import UsageError

    out = {}
    for item in filter(None, (s.strip() for s in (spec or "").split(","))):
        name, eq, value = item.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            eq = ""
        if not eq:
            raise UsageError(f"--units takes NAME=SCALE pairs like 'N0=1e9,D=1e6', got {item!r}")
    return out


def fit_table(args) -> dict:
    """The --points mode: read, select, fit, evaluate, optionally bootstrap. Returns the JSON dict."""
    from bench.errors import UsageError
    from fitting import bootstrap, evaluate_fit, fit, get_law, runs_from_table
    from fitting.table import column, exclude_top_loss, read_csv

    law = get_law(args.law)
    if not args.columns:
        raise UsageError(f"--points needs --columns: {','.join(law.inputs)},L for law {law.name!r}")
    specs = [s.strip() for s in args.columns.split(",")]
    if len(specs) != len(law.inputs) + 1:
        raise UsageError(
            f"law {law.name!r} needs {len(law.inputs) + 1} columns ({','.join(law.inputs)},L), "
            f"got {len(specs)}: {args.columns!r}"
        )
    table = read_csv(args.points)
    cols = {name: column(table, spec) for name, spec in zip(law.inputs, specs)}
    cols["L"] = column(table, specs[-1])
    keep = exclude_top_loss(cols["L"], args.exclude_top_loss)
    cols = {k: v[keep] for k, v in cols.items()}
    if args.run_column:
        if args.run_column not in table:
            raise UsageError(f"--run-column {args.run_column!r} is not a column of {args.points}")
        cols["_run"] = table[args.run_column][keep]
    runs = runs_from_table(cols, {k: k for k in law.inputs}, "L", "_run" if args.run_column else None)

    units = _parse_units(args.units)
    search = dict(units=units, starts=law.search_grid(args.search or "full"))
    result = fit(runs, law, **search)
    out = result.to_dict()
    out["metrics"] = evaluate_fit(result, runs)
    out["excluded_points"] = int((~keep).sum())
    if args.bootstrap:
        # Every replicate is searched exactly as the main fit was (the law's grid), not warm-started.
        boot = bootstrap(runs, law, n=args.bootstrap, seed=args.seed, level=args.level, **search)
        out["bootstrap"] = boot.to_dict()
        from fitting.identify import identifiability

        out["identifiability"] = identifiability(runs, law, boot)
    return out


def fit_records(args) -> dict:
    """The --results-dir mode: the law fit of `bench.harness.law_fit` over every post-training record.

    Returns one dict with every (family, method, recipe) group's fit, identifiability,
    generalisation tests and candidate forms, plus top-level shortcuts: `extrapolation_error`
    keyed 'family/method@recipe/size', and `constants` and `metrics` when there is exactly
    one group.
    """
    from pathlib import Path

    from bench.errors import UsageError
    from bench.harness.group_fit import FitConfig
    from bench.harness.law_fit import fit_law
    from bench.sources.records import load_records

    root = Path(args.results_dir)
    if not root.is_dir():
        raise UsageError(f"results directory {root} does not exist; pass the --results-dir of an earlier run")
    records = load_records(root)
    fit = fit_law(records, FitConfig(law=args.law, holdout=tuple(args.holdout) if args.holdout else None,
                                     bootstrap=args.bootstrap, seed=args.seed, search=args.search or "coarse"))
    if not fit.groups:
        raise UsageError(f"{root} holds no post-training records to fit; run a profile that post-trains (nano, smoke)")
    out = fit.to_dict()
    out["extrapolation_error"] = fit.heldout_errors()
    fitted = [g for g in out["groups"] if g["fit"] is not None]
    if not fitted:
        raise UsageError("no group could be fitted: " + "; ".join(f"{g['family']}/{g['method']}: {g['error']}"
                                                                  for g in out["groups"]))
    if len(out["groups"]) == 1 and fitted:
        out["constants"] = fitted[0]["fit"]["constants"]
        out["metrics"] = fitted[0]["within_run"]
    return out


def _print_human(out: dict) -> None:
    print(f"law {out['law']}: {out['formula']}")
    boot = out.get("bootstrap", {})
    verdicts = (out.get("identifiability") or {}).get("constants") or {}
    for name, value in out["constants"].items():
        ci = boot.get("intervals", {}).get(name)
        if name in verdicts and not verdicts[name]["identified"]:
            print(f"  {name:>6}: not identified ({verdicts[name]['reason']})")
            continue
        ci = f"  {100 * boot['level']:g}% CI [{ci[0]:.6g}, {ci[1]:.6g}]" if ci else ""
        print(f"  {name:>6} = {value!r}{ci}")
    print("  units: " + ", ".join(f"{k} in {u['label']}" for k, u in out["units"].items()))
    m = out["metrics"]
    slope = "n/a" if m["slope_difference"] is None else f"{m['slope_difference']:.4g}"
    print(f"  objective {out['objective']:.6e} (summed Huber, delta {out['huber_delta']:g}), "
          f"{out['n_points']} points in {out['n_runs']} runs, converged: {out['converged']}")
    print(f"  R^2 {m['r2']:.5f}, MAPE {m['mape']:.4f}%, Huber {m['huber']:.6e}, slope difference {slope}")


def _print_groups(out: dict) -> None:
    for g in out["groups"]:
        print(f"{g['key']} (law {g['law']}; recipe {g['recipe_summary']}; fit on {', '.join(g['fit_sizes'])}):")
        if g["fit"] is None:
            print(f"  not fitted: {g['error']}")
            continue
        ident = g.get("identifiability") or {}
        print(f"  {'identified' if ident.get('identified') else 'not identified: ' + '; '.join(ident.get('reasons') or [])}")
        verdicts = ident.get("constants") or {}
        for name, value in g["fit"]["constants"].items():
            c = verdicts.get(name)
            if c is None:
                print(f"  {name:>6} = {value!r} (not assessed: no bootstrap; pass --bootstrap N)")
            elif c["identified"]:
                print(f"  {name:>6} = {value!r}  CI [{c['interval'][0]:.6g}, {c['interval'][1]:.6g}]")
            else:
                print(f"  {name:>6}: not identified ({c['reason']})")
        for size, m in g["extrapolation"].items():
            if m.get("runaway"):
                print(f"  held-out {size}: {m['runaway']}")
                continue
            gap = m.get("gap_final_worst")
            print(f"  held-out {size}: extrapolation error (MAPE) {m['extrapolation_error']:.4f}%, gap error at the final "
                  f"checkpoint {'n/a' if gap is None else f'{gap:.2f}%'}, R^2 {m['r2']:.4f}")


def run(args) -> int:
    out = fit_records(args) if args.results_dir else fit_table(args)
    if args.json:
        json.dump(strict_json(out), sys.stdout, sort_keys=True, allow_nan=False, default=float)
        sys.stdout.write("\n")
    elif args.results_dir:
        _print_groups(out)
    else:
        _print_human(out)
    return 0
