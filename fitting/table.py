"""Tables of points for `prunebench fit --points`: reading a CSV, derived columns, exclusions.

A column spec is either a column's name or an arithmetic expression over columns written in
square brackets, e.g. Chinchilla's token count from compute: `[Training FLOP]/(6*[Model Size])`.
Expressions are parsed with `ast` and only numbers, column references, + - * / ** and
parentheses are allowed, so a spec can never run code.
"""

from __future__ import annotations

import ast
import csv
import operator
import re
from pathlib import Path

import numpy as np

from fitting.errors import FitError
from fitting.registry import did_you_mean

_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.Div: operator.truediv, ast.Pow: operator.pow}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos}


def read_csv(path: str | Path) -> dict[str, np.ndarray]:
    """Columns of a CSV with a header row: float arrays where every value parses, else strings."""
    path = Path(path)
    if not path.is_file():
        raise FitError(f"points file {str(path)!r} does not exist")
    with path.open(newline="") as fh:
        reader = csv.reader(fh)
        try:
            header = next(reader)
        except StopIteration:
            raise FitError(f"points file {str(path)!r} is empty") from None
        rows = [r for r in reader if r]
    if len(set(header)) != len(header):
        raise FitError(f"points file {str(path)!r} has duplicate column names")
    for i, r in enumerate(rows):
        if len(r) != len(header):
            raise FitError(f"{path}: row {i + 2} has {len(r)} fields, the header has {len(header)}")
    columns = {}
    for j, name in enumerate(header):
        vals = [r[j] for r in rows]
        try:
            columns[name] = np.array([float(v) for v in vals], dtype=float)
        except ValueError:
            columns[name] = np.array(vals, dtype=object)
    return columns


def _numeric(columns: dict, name: str) -> np.ndarray:
    if name not in columns:
        raise FitError(f"no column {name!r}{did_you_mean(name, columns)}; columns: {', '.join(columns)}")
    v = columns[name]
    if v.dtype == object:
        raise FitError(f"column {name!r} is not numeric")
    return v


def column(columns: dict[str, np.ndarray], spec: str) -> np.ndarray:
    """Values of a column spec: a column name, or an expression with [name] references."""
    spec = spec.strip()
    if spec in columns:
        return _numeric(columns, spec)
    refs: dict[str, str] = {}

    def ref(m):
        refs[f"_c{len(refs)}"] = m.group(1)
        return f"_c{len(refs) - 1}"

    code = re.sub(r"\[([^\[\]]+)\]", ref, spec)
    not_found = (f"no column {spec!r}{did_you_mean(spec, columns)}; columns: {', '.join(columns)} "
                 f"(or write an expression like [Training FLOP]/(6*[Model Size]))")
    try:
        tree = ast.parse(code, mode="eval")
    except SyntaxError:
        raise FitError(not_found) from None
    if isinstance(tree.body, ast.Name) and tree.body.id not in refs:
        raise FitError(not_found)  # a bare word: a misspelt column, not an expression

    def ev(node):
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return float(node.value)
        if isinstance(node, ast.Name) and node.id in refs:
            return _numeric(columns, refs[node.id])
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            return _BINOPS[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
            return _UNARY[type(node.op)](ev(node.operand))
        raise FitError(
            f"column spec {spec!r}: only numbers, [column] references, + - * / ** and parentheses "
            f"are allowed; unknown column names must be written in [brackets]"
        )

    with np.errstate(all="ignore"):
        out = ev(tree)
    return np.broadcast_to(np.asarray(out, dtype=float), next(iter(columns.values())).shape).copy()


def exclude_top_loss(loss: np.ndarray, k: int) -> np.ndarray:
    """Mask keeping rows whose loss is strictly below the k-th largest loss (Besiroglu et al.'s rule).

    k = 0 keeps everything. With k = 5 on the Chinchilla points this drops the five
    large-model, few-token runs at ~1e19 FLOP, leaving 240 rows.
    """
    loss = np.asarray(loss, dtype=float)
    if k < 0 or k >= loss.size:
        raise FitError(f"cannot exclude the {k} largest losses of {loss.size} points")
    if k == 0:
        return np.ones(loss.size, dtype=bool)
    return loss < np.sort(loss)[-k]
