"""Layers that point one way: which of our packages each package may import (issue 14).

Every module of `bench`, `pruners`, `fitting` and `reports` is parsed with `ast` (nothing is
imported), and every import of one of those packages is collected, the lazy ones inside
functions included. The rules (docs/architecture.md):

* the leaves: `pruners` imports nothing of `bench`, `fitting` or `reports`; `fitting` nothing of
  `bench`, `pruners` or `reports`; `reports` renders and may import `fitting` only;
* inside `bench`, from the bottom up: the base modules (`bench.errors`, the one-line user
  errors; `bench.registry`; `bench.env`, the run environment; `bench.progress`; `bench.isa`, the CPU kernels' pinned ISA; `bench.children`, child
  processes that end with their parent) import only the
  leaves and each other; `bench.sources` imports the base (and `reports`, for the record type);
  `bench.tasks` also `bench.sources`; `bench.evaluation` also `bench.tasks`; `bench.training`
  the base, `bench.sources` and `bench.evaluation`. `bench.studies`, `bench.harness`, `bench.commands` and `bench.cli` may
  import anything of `bench` below them, except that `bench.studies` imports neither
  `bench.harness` nor `bench.commands` (it may use `reports`, which imports no bench), and only
  `bench.commands` and `bench.cli` import
  `bench.commands`.

A failure lists each offending import as ``path:line: import text (rule)``.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("bench", "pruners", "fitting", "reports")
LEAVES = ("pruners", "fitting")

# Layers of bench, bottom up: a module of each may import, of bench, only the layers listed
# (and itself). Leaves: whether `pruners` and `fitting` may be imported too.
BENCH_BASE = ("bench.errors", "bench.registry", "bench.env", "bench.progress", "bench.isa", "bench.children")  # every upper layer may use
BELOW_STUDIES = BENCH_BASE + ("bench.sources", "bench.tasks", "bench.evaluation", "bench.training")
BENCH_LAYERS = {
    "bench.errors": ((), LEAVES),
    "bench.registry": ((), LEAVES),
    "bench.progress": ((), ()),
    "bench.isa": (("bench.errors",), ()),
    "bench.children": ((), ()),
    "bench.env": (("bench.progress",), ()),
    "bench.sources": (BENCH_BASE, LEAVES + ("reports",)),  # reports.records: the record type
    "bench.tasks": (BENCH_BASE + ("bench.sources",), ()),
    "bench.evaluation": (BENCH_BASE + ("bench.sources", "bench.tasks"), ()),
    "bench.training": (BENCH_BASE + ("bench.sources", "bench.evaluation"), LEAVES),
    "bench.studies": (BELOW_STUDIES, LEAVES + ("reports",)),  # reports.numbers formats gate figures
    "bench.harness": (BELOW_STUDIES + ("bench.studies",), LEAVES + ("reports",)),
    "bench.test_matrix": (BELOW_STUDIES + ("bench.studies", "bench.harness"), LEAVES + ("reports",)),
    "bench.commands": (BELOW_STUDIES + ("bench.studies", "bench.harness"), LEAVES + ("reports",)),
    "bench.cli": (BELOW_STUDIES + ("bench.studies", "bench.harness", "bench.commands"), LEAVES + ("reports",)),
    "bench": ((), ()),  # bench/__init__.py: the version only
}
LEAF_RULES = {
    "pruners": ("pruners",),
    "fitting": ("fitting",),
    "reports": ("reports", "fitting"),
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            out[_module_name(path)] = path
    return out


def _imports(name: str, path: Path, known: set[str]):
    """(line, imported module, source text) for every import of our packages in one module."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, f"import {alias.name}"
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                pkg = name.split(".") if is_package else name.split(".")[:-1]
                pkg = pkg[:len(pkg) - (node.level - 1)]
                base = ".".join(pkg + ([base] if base else []))
            text = f"from {'.' * node.level}{node.module or ''} import {', '.join(a.name for a in node.names)}"
            targets = {f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names}
            for target in sorted(targets):
                yield node.lineno, target, text


def _ours(module: str) -> bool:
    return module.split(".")[0] in PACKAGES


def _within(module: str, prefixes) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _layer(name: str) -> str:
    for layer in sorted(BENCH_LAYERS, key=len, reverse=True):
        if _within(name, (layer,)):
            return layer
    raise AssertionError(f"{name} is in no layer of bench; add it to BENCH_LAYERS in {__file__}")


@functools.lru_cache(maxsize=1)
def _violations() -> tuple[str, ...]:
    modules = _modules()
    known = set(modules)
    bad = []
    for name, path in modules.items():
        top = name.split(".")[0]
        if top == "bench":
            layer = _layer(name)
            bench_ok, leaves_ok = BENCH_LAYERS[layer]
            allowed = (layer,) + bench_ok + leaves_ok
            rule = f"{layer} may import {', '.join(bench_ok + leaves_ok) or 'nothing of ours'}"
        else:
            allowed = LEAF_RULES[top]
            rule = f"{top} may import {', '.join(a for a in allowed if a != top) or 'nothing of ours'}"
        for line, target, text in _imports(name, path, known):
            if not _ours(target) or target == "bench" and top == "bench":
                continue
            if _within(target, ("bench.commands", "bench.cli")) and not _within(name, ("bench.commands", "bench.cli")):
                bad.append(f"{path.relative_to(ROOT)}:{line}: {text} (only bench.commands and bench.cli "
                           f"import bench.commands)")
            elif not _within(target, allowed):
                bad.append(f"{path.relative_to(ROOT)}:{line}: {text} ({rule})")
    return tuple(dict.fromkeys(bad))


def test_every_module_is_parsed_and_placed():
    modules = _modules()
    assert {"pruners.registry", "fitting.fitter", "reports.render", "bench.cli", "bench.harness.runner"} <= set(modules)
    for name in modules:
        if name.startswith("bench"):
            _layer(name)


def _for(prefix: str) -> list[str]:
    return [v for v in _violations() if v.startswith(prefix.replace(".", "/"))]


def test_pruners_import_nothing_of_bench_fitting_or_reports():
    bad = _for("pruners/")
    assert not bad, "pruners is a leaf:\n" + "\n".join(bad)


def test_fitting_imports_nothing_of_bench_pruners_or_reports():
    bad = _for("fitting/")
    assert not bad, "fitting is a leaf:\n" + "\n".join(bad)


def test_reports_import_fitting_only():
    bad = _for("reports/")
    assert not bad, "reports renders what bench and fitting computed, and imports fitting only:\n" + "\n".join(bad)


def test_bench_layers_point_down():
    bad = _for("bench/")
    assert not bad, "bench's layers import only the ones below them:\n" + "\n".join(bad)
