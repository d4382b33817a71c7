"""A results page for the docs, rendered from the records and fit.json of one run.

`prunebench tables --results-dir DIR --out docs/results/NAME.md` writes one markdown page:

* a header that states, once, where every figure on the page comes from: the command that made
  the records, the commit, the machine, the dates, and the conditions the records carry
  (profile, device, dtype, library versions, data digests, the law and its bootstrap). Where the
  records disagree, every value is listed with its record count, never merged into one;
* then the tables of `reports.results_tables` (zoo, recovery, extrapolation), the spread over
  seeds and, where the run holds several recipes, their comparison (`reports.recipe_tables`);
  none carries provenance of its own.

Pure functions of their inputs (typed records, `reports.records.Record`, and fit.json's data),
like the rest of `reports/`.
"""

from __future__ import annotations

import shlex
from collections import Counter
from collections.abc import Mapping

from reports.records import Record
from reports.fit_tables import spread_table
from reports.recipe_tables import comparison_section
from reports.results_tables import extrapolation_table, recovery_table, zoo_table


def _doc(rec: Record, key: str) -> dict:
    """A record's document `key` (invocation, provenance, machine, versions), or {} where it is
    absent or was normalised away (the golden inputs)."""
    value = getattr(rec, key)
    return value if isinstance(value, Mapping) else {}


def _command(rec: Record) -> str | None:
    argv = _doc(rec, "invocation").get("argv")
    if isinstance(argv, list) and argv:
        return "pytest " + shlex.join(map(str, argv[1:]))  # argv[0] is pytest's path; quoted to paste
    return argv if isinstance(argv, str) else None


def _commit(rec: Record) -> str | None:
    code = _doc(rec, "provenance").get("code")
    if not isinstance(code, Mapping):
        return None
    if not code.get("commit"):
        return f"v{code.get('prunebench')} (not a git checkout)"
    return str(code["commit"])[:10] + (" (uncommitted changes)" if code.get("dirty") is True else "")


def _machine(rec: Record) -> str | None:
    m = _doc(rec, "machine")
    if not m:
        return rec.machine if isinstance(rec.machine, str) else None
    cpu = m.get("cpu_model") or m.get("processor") or m.get("machine")
    parts = [f"{cpu}, {m.get('cpu_count')} cores, {m.get('platform')}"]
    isa = m.get("cpu_isa") or {}
    if isa:
        settings = " ".join(f"{k}={v}" for k, v in sorted((isa.get("settings") or {}).items()) if v)
        parts.append(f"CPU kernels {isa.get('capability', '?')}" + (f", pinned ({settings})" if isa.get("pinned")
                                                                    else " (native, not pinned)"))
    if m.get("blas"):
        parts.append(f"BLAS {m['blas']}")
    if m.get("gpu"):
        capability = m.get("gpu_capability")
        parts.append(f"GPU {m['gpu']}" + (f" (sm {'.'.join(map(str, capability))})" if capability else ""))
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


def _dates(records) -> str:
    created = sorted(str(r.created) for r in records if str(r.created or "")[:4].isdigit())
    if not created:
        return "not recorded"
    return created[0] if created[0] == created[-1] else f"{created[0]} to {created[-1]} (records written)"


def _conditions(records, fit: dict | None) -> str:
    prov = [_doc(r, "provenance") for r in records]
    versions = [_doc(r, "versions") for r in records]
    runs = {_doc(r, "invocation").get("run_id") for r in records}
    parts = [f"profile {_tally(r.profile for r in records)}",
             f"{len(records)} records of {len(runs)} run(s)",
             f"device {_tally(p.get('device') for p in prov)}",
             f"dtype {_tally(p.get('dtype') for p in prov)}",
             f"torch {_tally(p.get('torch') or v.get('torch') for p, v in zip(prov, versions))}",
             f"transformers {_tally(p.get('transformers') or v.get('transformers') for p, v in zip(prov, versions))}"]
    if fit:
        search = fit.get("search") or {}
        held = ", ".join(fit.get("holdout") or []) or "the largest size per family"
        parts.append(f"law {fit.get('law')}, {fit.get('bootstrap')} bootstrap replicates, "
                     f"{search.get('grid', '?')} search, held out: {held}")
    else:
        parts.append("no fit.json (no law fitted)")
    return "; ".join(parts)


def _data(records) -> str:
    """Every data file the records read, with its sha256 (12 digits) or every digest seen."""
    seen: dict[str, set] = {}
    for r in records:
        data = _doc(r, "provenance").get("data")
        for name, digest in (data.items() if isinstance(data, Mapping) else ()):
            seen.setdefault(name, set()).add(str(digest)[:12])
    if not seen:
        return "not recorded"
    return "; ".join(f"{name} `{' / '.join(sorted(d))}`" for name, d in sorted(seen.items()))


def page_header(records, fit: dict | None, notes=()) -> str:
    """The list that opens a results page: where every figure below it comes from."""
    rows = [("Command", _tally((_command(r) for r in records), code=True)),
            ("Commit", _tally(_commit(r) for r in records)),
            ("Machine", _tally(_machine(r) for r in records)),
            ("Date (UTC)", _dates(records)),
            ("Conditions", _conditions(records, fit)),
            ("Data (sha256)", _data(records))]
    rows += [("Note", " ".join(str(n).split())) for n in notes]
    return "\n".join(f"- **{name}**: {value}" for name, value in rows)


def default_title(records) -> str:
    """'Results: nano at ec583043d8': the profile and commit most of the records share."""
    def common(values):
        values = [v for v in values if v]
        return Counter(values).most_common(1)[0][0] if values else "unknown"

    return f"Results: {common(r.profile for r in records)} at {common(_commit(r) for r in records)}"


def render_page(records, fit: dict | None, title: str | None = None, notes=()) -> str:
    """The whole results page: title, the provenance header (stated once), then the tables.

    Args:
        records: the run's records, as the tables of `reports.results_tables` take them.
        fit: the run's fit.json, or None when no law was fitted.
        title: the page's heading (default `default_title`).
        notes: conditions the records cannot know (a cold cache, other jobs on the machine),
            one header line each.
    """
    return "\n\n".join([
        f"# {title or default_title(records)}", page_header(records, fit, notes),
        "_Generated by `prunebench tables` from the run's records and fit.json; regenerate it, do not edit it._",
        "## Zoo", zoo_table(records), "## Recovery", recovery_table(records),
        "## Extrapolation to held-out sizes", extrapolation_table(fit),
        *(["## Spread over study seeds", spread_table(fit)] if (fit or {}).get("spread") else []),
        *([section.rstrip()] if (section := comparison_section((fit or {}).get("recipes"))) else [])]) + "\n"
