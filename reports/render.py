"""Write a report directory: report.md, fit.json and the PNG plots.

Files are written to temporary names and renamed, so an interrupted render never leaves a
half-written report that looks complete.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import tempfile
from pathlib import Path

from reports import markdown, plots


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def strict_json(obj):
    """NaN and infinities become null, so the file is strict JSON that any parser reads.

    Where they arise: an unbounded bootstrap interval of an unidentified constant, or the R^2 of
    a constant loss. The verdict next to such a value says why it is missing.
    """
    if isinstance(obj, dict):
        return {k: strict_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict_json(v) for v in obj]
    if isinstance(obj, numbers.Real) and not isinstance(obj, numbers.Integral) and not math.isfinite(obj):
        return None
    return obj


def write_report(records: list, fit: dict | None, verdicts: list[dict], out_dir: str | Path) -> dict[str, Path]:
    """Render everything from records (`reports.records.Record`) and fit.json's data (or None:
    nothing fitted) into `out_dir`: report.md, fit.json and the plots."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    pngs = []
    groups = [plots.PlotGroup.from_dict(g) for g in (fit or {}).get("groups", []) if g.get("curves")]
    recipes = {(g.family, g.method): set() for g in groups}
    for g in groups:
        recipes[(g.family, g.method)].add(g.recipe)
    for group in groups:
        # One file per group: the recipe joins the name when a family and method has several,
        # and the study seed when the run had several.
        tag = (f"_{group.recipe}" if len(recipes[(group.family, group.method)]) > 1 else "") + \
            ("" if group.seed is None else f"_s{group.seed}")
        for make in (plots.loss_curves, plots.predicted_vs_actual):
            path = make(group, out, tag)
            if path is not None:
                pngs.append(path.name)
                written[path.name] = path
    for path in plots.recipe_curves(((fit or {}).get("recipes") or {}).get("cases") or [], out):
        pngs.append(path.name)
        written[path.name] = path
    if fit is not None:
        _atomic_write(out / "fit.json", json.dumps(strict_json(fit), indent=1, sort_keys=True, allow_nan=False, default=float))
        written["fit.json"] = out / "fit.json"
    _atomic_write(out / "report.md", markdown.render_report(records, fit, verdicts, pngs))
    written["report.md"] = out / "report.md"
    return written
