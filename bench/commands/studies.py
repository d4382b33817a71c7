"""`prunebench studies`: list the built-in studies, or print a study's expanded matrix.

    prunebench studies list
    prunebench studies expand paper --configs tests/configs
    prunebench studies expand my-study.toml --json

`expand` shows every case id with its model, method and target ratio, and the exact
parameter counts before and after pruning with the achieved ratio, computed on the meta
device (`bench.studies.params`) wherever the model's config is reachable. Nothing is
downloaded and no weights are loaded.
"""

from __future__ import annotations

import json
import sys


def add_parser(p) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True
    sub.add_parser("list", help="the built-in studies (the profiles of `pytest bench --profile`)",
                   description="the built-in studies (the profiles of `pytest bench --profile`)")
    e = sub.add_parser("expand", help="a study's cases with exact parameter counts",
                       description="a study's cases with exact parameter counts (meta device)")
    e.add_argument("study", metavar="NAME_OR_FILE", help="a built-in study name or a study file (TOML)")
    e.add_argument("--configs", default=None, metavar="DIR",
                   help="directory of public model configs named <org>--<name>.json (e.g. tests/configs), "
                        "for hub models not in the HF cache")
    e.add_argument("--cache-dir", default=None, help="prunebench cache (converted GGUF configs)")
    e.add_argument("--full-eval", action="store_true", help="the cases as --full-eval runs them (no window caps)")
    e.add_argument("--json", action="store_true", help="one JSON object instead of the table")


def run(args) -> int:
    if args.action == "list":
        return _list()
    return _expand(args)


def _list() -> int:
    from reports.table import table as markdown_table

    from bench.studies import builtin_names, load_study, study_cases

    rows = []
    for name in builtin_names():
        study = load_study(name)
        rows.append([name, len(study_cases(study)), str(study.path), study.description])
    print(markdown_table(rows, ["study", "cases", "file", "description"]))
    print("run one: pytest bench --profile NAME; your own: copy a file, edit it, pytest bench --study FILE")
    return 0


def expanded(study, cases, counts) -> dict:
    """The matrix as plain JSON: the study's settings and one row per case."""
    from bench.harness.run_config import case_group_names

    rows = []
    for case in cases:
        k = counts[case.id]
        rows.append({
            "id": case.id, "model": case.model, "model_key": case.model_key, "family": case.family,
            "method": case.method, "label": case.label or case.method, "ratio": case.ratio,
            "params_before": k.before, "params_after": k.after, "achieved_ratio": k.achieved,
            "evals": [f"{e.key}" + (f" (max {e.max_windows} windows)" if e.max_windows else "") for e in case.evals],
            "zeroshot": list(case.zeroshot.tasks) if case.zeroshot else [],
            "posttrain_tokens": case.recipe.tokens if case.recipe is not None else None,
            "config": k.source, "config_missing": k.missing,
        })
    return {"study": study.name, "file": str(study.path), "description": study.description,
            "law": study.law, "holdout": list(study.holdout), "posttrain": dict(study.posttrain),
            "fit_groups": case_group_names(cases), "cases": rows}


def _expand(args) -> int:
    from pathlib import Path

    from bench.commands.options import run_env
    from bench.errors import UsageError
    from bench.studies import load_study, study_cases
    from bench.studies.params import count_cases

    configs = Path(args.configs) if args.configs else None
    if configs is not None and not configs.is_dir():
        raise UsageError(f"--configs {configs} is not a directory; pass one holding <org>--<name>.json config files")
    study = load_study(args.study)
    cases = study_cases(study, full_eval=args.full_eval)
    out = expanded(study, cases, count_cases(cases, configs, run_env(args, progress=False).cache_dir))
    if args.json:
        json.dump(out, sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0
    _print(out)
    return 0


def _print(out: dict) -> None:
    from reports.table import table as markdown_table

    rows = out["cases"]
    print(f"study {out['study']} ({out['file']}): {len(rows)} cases")
    if out["description"]:
        print(f"  {out['description']}")
    evals = sorted({e for r in rows for e in r["evals"]}, key=lambda e: (e.split(":")[0], e))
    zs = sorted({t for r in rows for t in r["zeroshot"]})
    print(f"perplexity: {', '.join(evals) or 'none'}; zero-shot: {', '.join(zs) or 'none'}")
    post = bool(out["posttrain"])
    if post:
        held = ", ".join(out["holdout"]) or "the largest size of each family"
        print(f"law {out['law']}; held out: {held}; fit groups: {', '.join(out['fit_groups']) or 'none'}")
    table = []
    for r in rows:
        known = r["params_before"] is not None
        row = [r["id"], r["model"], r["label"], f"{r['ratio']:g}",
               f"{r['params_before']:,}" if known else "–", f"{r['params_after']:,}" if known else "–",
               f"{100 * r['achieved_ratio']:.2f}%" if known else "–",
               f"{100 * r['params_after'] / r['params_before']:.4f}%" if known else "–"]
        if post:
            row.append("–" if r["posttrain_tokens"] is None else f"{r['posttrain_tokens']:,}")
        table.append(row)
    headers = ["case", "model", "method", "target", "params before", "params after", "achieved", "remaining"]
    print(markdown_table(table, headers + (["post-train tokens"] if post else [])))
    missing = sorted({(r["model"], r["config_missing"]) for r in rows if r["config_missing"]})
    for model, why in missing:
        print(f"no config for {model}: {why}; pass --configs DIR with {model.replace('/', '--')}.json for exact counts")
