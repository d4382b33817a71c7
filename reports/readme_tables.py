"""A results page, generated from the records and fit.json of one run (never typed by hand).

`prunebench tables --results-dir DIR --out docs/results/NAME.md` renders one markdown page:

* a header list that states, once, where every number on the page comes from: the command that
  made the records, the commit, the machine, the dates, and the conditions the records carry
  (profile, device, dtype, library versions, data digests, the law and its bootstrap), each
  value with its record count wherever the records disagree;
* the zoo: each base's shape, parameters, embedding share, pre-training time, base held-out
  loss (L0) and control improvement;
* recovery: per case, the held-out loss after pruning and after post-training, and the share of
  the gap to L0 won back;
* extrapolation: per fitted group and held-out size, MAPE on L beside the error on the gap L - L0.

Pure functions of their inputs, like the rest of `reports/`.
"""

from __future__ import annotations

import shlex
from collections import Counter

from reports.numbers import fmt_num, fmt_pct
from reports.table import table as _table


def _block(rec: dict, key: str) -> dict:
    """A record's sub-dict, or {} where it is absent or was normalised away (golden inputs)."""
    value = rec.get(key)
    return value if isinstance(value, dict) else {}


def _command(rec: dict) -> str | None:
    argv = _block(rec, "invocation").get("argv")
    if isinstance(argv, list) and argv:
        return "pytest " + shlex.join(map(str, argv[1:]))  # argv[0] is pytest's path; quoted to paste
    return argv if isinstance(argv, str) else None


def _commit(rec: dict) -> str | None:
    code = _block(rec, "provenance").get("code")
    if not isinstance(code, dict):
        return None
    if not code.get("commit"):
        return f"v{code.get('prunebench')} (not a git checkout)"
    dirty = code.get("dirty")
    return str(code["commit"])[:10] + (" (uncommitted changes)" if dirty is True else "")


def _machine(rec: dict) -> str | None:
    m = _block(rec, "machine")
    if not m:
        return rec.get("machine") if isinstance(rec.get("machine"), str) else None
    parts = [f"{m.get('processor') or m.get('machine')}, {m.get('cpu_count')} cores, {m.get('platform')}"]
    if m.get("gpu"):
        parts.append(f"GPU {m['gpu']}" + (f" (sm {'.'.join(map(str, m['gpu_capability']))})"
                                          if m.get("gpu_capability") else ""))
    if m.get("torch_threads"):
        parts.append(f"{m['torch_threads']} torch threads")
    return "; ".join(parts)


def _tally(values, code: bool = False) -> str:
    """One value, or every distinct value with its record count, most common first."""
    counts = Counter(v for v in values if v is not None)
    if not counts:
        return "not recorded"
    wrap = (lambda v: f"`{v}`") if code else str
    if len(counts) == 1:
        return wrap(next(iter(counts)))
    return "; ".join(f"{wrap(v)} ({n} records)" for v, n in counts.most_common())


def _dates(records: list[dict]) -> str:
    created = sorted(str(r["created"]) for r in records if str(r.get("created", ""))[:4].isdigit())
    if not created:
        return "not recorded"
    return created[0] if created[0] == created[-1] else f"{created[0]} to {created[-1]} (records written)"


def _conditions(records: list[dict], fit: dict | None) -> str:
    prov = [_block(r, "provenance") for r in records]
    runs = {_block(r, "invocation").get("run_id") for r in records}
    parts = [f"profile {_tally(r.get('profile') for r in records)}",
             f"{len(records)} records of {len(runs)} run(s)",
             f"device {_tally(p.get('device') for p in prov)}",
             f"dtype {_tally(p.get('dtype') for p in prov)}",
             f"torch {_tally(p.get('torch') or _block(r, 'versions').get('torch') for p, r in zip(prov, records))}",
             f"transformers {_tally(p.get('transformers') or _block(r, 'versions').get('transformers') for p, r in zip(prov, records))}"]
    if fit:
        search = fit.get("search") or {}
        parts.append(f"law {fit.get('law')}, {fit.get('bootstrap')} bootstrap replicates, "
                     f"{search.get('grid', '?')} search, held out: {', '.join(fit.get('holdout') or []) or 'the largest size per family'}")
    else:
        parts.append("no fit.json (no law fitted)")
    return "; ".join(parts)


def _data(records: list[dict]) -> str:
    """Every data file the records read, with its sha256 (12 digits) or every digest seen."""
    seen: dict[str, set] = {}
    for r in records:
        data = _block(r, "provenance").get("data")
        for name, digest in (data.items() if isinstance(data, dict) else ()):
            seen.setdefault(name, set()).add(str(digest)[:12])
    if not seen:
        return "not recorded"
    return "; ".join(f"{name} `{' / '.join(sorted(d))}`" for name, d in sorted(seen.items()))


def page_header(records: list[dict], fit: dict | None, notes=()) -> str:
    """The list that opens a results page: where every figure below it comes from."""
    rows = [("Command", _tally((_command(r) for r in records), code=True)),
            ("Commit", _tally(_commit(r) for r in records)),
            ("Machine", _tally(_machine(r) for r in records)),
            ("Date (UTC)", _dates(records)),
            ("Conditions", _conditions(records, fit)),
            ("Data (sha256)", _data(records))]
    rows += [("Note", " ".join(str(n).split())) for n in notes]
    return "\n".join(f"- **{name}**: {value}" for name, value in rows)


def _posttrained(records):
    return [r for r in records if (r.get("posttrain") or {}).get("trajectory") and r.get("status") == "ok"]


def zoo_table(records: list[dict]) -> str:
    """One row per (family, size), from its control case (the unpruned base, post-trained)."""
    rows = []
    for r in sorted((r for r in _posttrained(records) if r.get("method") == "control"),
                    key=lambda r: (r["model"].get("family", ""), r["params"]["before"])):
        m, p, pt = r["model"], r["params"], r["posttrain"]
        info = m.get("info") or {}
        ne = p.get("non_embedding_before") or m.get("non_embedding_params")
        share = 1 - ne / p["before"] if ne else None
        wall = info.get("pretrain_wall_s")
        rows.append([f"`{m.get('spec')}`", f"{m.get('hidden_size')} × {m.get('layers')}", f"{p['before']:,}",
                     f"{ne:,}" if ne else "–", fmt_pct(share), fmt_num(info.get("pretrain_tokens"), 0),
                     f"{wall:.0f} s" if wall else "–", f"{pt['L0']:.4f}", fmt_pct(pt.get("control_improvement"))])
    if not rows:
        return "_No control cases: the zoo table needs the post-trained unpruned bases._"
    return _table(rows, ["base", "hidden × layers", "params", "non-embedding", "embedding share",
                         "pre-training tokens", "pre-training wall", "base held-out loss L0",
                         "control improvement"])


def recovery_table(records: list[dict]) -> str:
    """Held-out loss after pruning -> after post-training, and the share of the gap to L0 won back."""
    rows = []
    for r in sorted((r for r in _posttrained(records) if r.get("method") != "control"),
                    key=lambda r: (r["model"].get("family", ""), r["params"]["before"], r.get("label", ""),
                                   r.get("ratio", 0))):
        pt = r["posttrain"]
        l0, start, end = pt["L0"], pt.get("initial_val_loss"), pt["trajectory"][-1]["val_loss"]
        won = (start - end) / (start - l0) if start is not None and start > l0 else None
        rows.append([f"`{r['case_id']}`", fmt_pct(pt.get("rho")), f"{l0:.4f}",
                     f"{start:.4f}" if start is not None else "–", f"{end:.4f}", fmt_pct(won)])
    return _table(rows, ["case", "achieved ratio", "L0", "after pruning", "after post-training",
                         "gap won back"]) if rows else "_No post-trained pruned cases._"


def extrapolation_table(fit: dict | None) -> str:
    """MAPE on L beside the error on the recovery gap, for every held-out size of every group."""
    def pct(m, key):
        # A run-away prediction is never shown as a measurement (issue 11).
        if m.get("runaway"):
            return "run-away"
        return fmt_pct(m[key] / 100) if m.get(key) is not None else "–"

    rows = []
    for g in (fit or {}).get("groups", []):
        key = g.get("key") or f"{g.get('family')}/{g.get('method')}"
        ident = g.get("identifiability") or {}
        verdict = "yes" if ident.get("identified") else "no: " + "; ".join(ident.get("reasons") or ["no verdict"])
        for size, m in sorted((g.get("extrapolation") or {}).items()):
            rows.append([key, ", ".join(g.get("fit_sizes", [])), size, pct(m, "mape"), pct(m, "gap_mean"),
                         pct(m, "gap_final"), verdict])
    if not rows:
        return "_No held-out size was predicted._"
    return _table(rows, ["group", "fit sizes", "held out", "MAPE on L", "gap error, mean",
                         "gap error, final checkpoint", "fit identified"])


def default_title(records: list[dict]) -> str:
    """'Results: nano at ec583043d8': the profile and commit most of the records share."""
    def common(values):
        values = [v for v in values if v]
        return Counter(values).most_common(1)[0][0] if values else "unknown"

    return f"Results: {common(r.get('profile') for r in records)} at {common(_commit(r) for r in records)}"


def render_page(records: list[dict], fit: dict | None, title: str | None = None, notes=()) -> str:
    """The whole results page: title, the provenance header (stated once), then the tables.

    Args:
        title: the page's heading (default `default_title`).
        notes: conditions the records cannot know (a cold cache, other jobs on the machine),
            one header row each.
    """
    return "\n\n".join([
        f"# {title or default_title(records)}", page_header(records, fit, notes),
        "_Generated by `prunebench tables` from the run's records and fit.json; regenerate it, do not edit it._",
        "## Zoo", zoo_table(records), "## Recovery", recovery_table(records),
        "## Extrapolation to held-out sizes", extrapolation_table(fit)]) + "\n"
