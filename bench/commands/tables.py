"""`prunebench tables`: a results page (zoo, recovery, extrapolation) from a results directory.

    prunebench tables --results-dir /tmp/cold/results --out docs/results/nano-ec58304.md \\
        --title "Nano study, cold run" --note "cold cache: the zoo was built in the run"

The figures on the docs' results pages come from this command run on the results directory of
a named run, so none of them is typed by hand. The page opens with one header table that names
the command, commit, machine, dates and conditions recorded in the records' provenance; the
tables below it carry no provenance of their own.
"""

from __future__ import annotations


def add_parser(p) -> None:
    p.add_argument("--results-dir", required=True, help="results directory of a run (holds records/ and fit.json)")
    p.add_argument("--out", default=None, metavar="PAGE.md",
                   help="write the page here (e.g. docs/results/NAME.md) instead of printing it")
    p.add_argument("--title", default=None, help="the page's heading (default: 'Results: PROFILE at COMMIT')")
    p.add_argument("--note", action="append", default=[], metavar="TEXT",
                   help="a condition the records cannot know (a cold cache, other jobs on the machine); "
                        "one header row each (repeatable)")


def run(args) -> int:
    import json
    from pathlib import Path

    from bench.errors import UsageError
    from bench.sources.records import load_run
    from reports.results_page import render_page

    root, records = load_run(args.results_dir)
    fit_file = root / "fit.json"
    try:
        fit = json.loads(fit_file.read_text()) if fit_file.is_file() else None
    except json.JSONDecodeError as exc:
        raise UsageError(f"cannot read {fit_file}: {exc}; re-render it with `prunebench report --results-dir {root}`") from None
    text = render_page(records, fit, title=args.title, notes=args.note)
    if args.out:
        out = Path(args.out)
        if not out.parent.is_dir():
            raise UsageError(f"cannot write {out}: directory {out.parent} does not exist; create it or choose another --out")
        try:
            out.write_text(text)
        except OSError as exc:
            raise UsageError(f"cannot write {out}: {exc.strerror or exc}") from None
        print(out)
    else:
        print(text, end="")
    return 0
