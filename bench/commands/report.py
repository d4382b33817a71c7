"""`prunebench report`: re-render report.md, fit.json and plots from stored records.

Nothing is run and no model is loaded: the records hold everything the report needs.
"""

from __future__ import annotations


def add_parser(p) -> None:
    from fitting.laws import LAWS

    p.add_argument("--results-dir", required=True, help="results directory of an earlier run (holds records/)")
    p.add_argument("--out", default=None, help="where to write the report (default: the results directory)")
    p.add_argument("--law", default="p2", help=f"scaling law to fit ({', '.join(LAWS)}; default p2)")
    p.add_argument("--holdout", action="append", default=None, metavar="SIZE",
                   help="model size key to hold out (repeatable; default: the largest per family)")
    p.add_argument("--bootstrap", type=int, default=None,
                   help="bootstrap replicates for the intervals and identifiability verdicts (default "
                        "$PRUNEBENCH_BOOTSTRAP, else 100; 0: none, and then no fit is identified)")
    p.add_argument("--search", choices=("coarse", "full"), default="coarse",
                   help="multistart grid of each law, for the main fit and every bootstrap replicate alike "
                        "(default coarse: 128 starts for p2; full: 2,187)")
    p.add_argument("--check-search", action="store_true",
                   help="also fit each group once from the full grid and say whether the coarse search reaches "
                        "its optimum (costs about one full-grid fit per group)")


def run(args) -> int:

    from bench.errors import UsageError
    from bench.harness.group_fit import FitConfig
    from bench.harness.law_fit import fit_law
    from bench.sources.records import load_run
    from reports.render import write_report

    root, records = load_run(args.results_dir)
    if args.bootstrap is not None and args.bootstrap < 0:
        raise UsageError(f"--bootstrap must be >= 0, got {args.bootstrap}")
    config = FitConfig(law=args.law, holdout=tuple(args.holdout) if args.holdout else None, search=args.search,
                         check_search=args.check_search)
    if args.bootstrap is not None:
        config.bootstrap = args.bootstrap
    fit = fit_law(records, config)
    files = write_report(records, fit.to_dict() if fit.groups else None, [], args.out or root)
    for name in sorted(files):
        print(files[name])
    return 0
