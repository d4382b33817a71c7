"""`prunebench tables`: the README's measured tables, generated from a results directory.

The figures in the README's zoo, recovery and extrapolation tables come from this command run
on the results directory of a named run, so none of them is typed by hand; the first line of
its output names the command, commit and machine that made the records.
"""

from __future__ import annotations


def add_parser(p) -> None:
    p.add_argument("--results-dir", required=True, help="results directory of a run (holds records/ and fit.json)")
    p.add_argument("--out", default=None, help="write the markdown here instead of printing it")


def run(args) -> int:
    import json
    from pathlib import Path

    from bench.errors import UsageError
    from bench.sources.records import load_run
    from reports.readme_tables import render_tables

    root, records = load_run(args.results_dir)
    fit_file = root / "fit.json"
    try:
        fit = json.loads(fit_file.read_text()) if fit_file.is_file() else None
    except json.JSONDecodeError as exc:
        raise UsageError(f"cannot read {fit_file}: {exc}; re-render it with `prunebench report --results-dir {root}`") from None
    text = render_tables(records, fit)
    if args.out:
        Path(args.out).write_text(text)
        print(args.out)
    else:
        print(text, end="")
    return 0
