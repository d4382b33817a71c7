"""Generate the docs pages that the code already knows, at every `mkdocs build` (mkdocs-gen-files).

Nothing here holds a fact of its own: each page is read from the registry or parser that the
suite itself uses, so a page cannot drift from the code.

* ``index.md``: the README, with its ``docs/`` links pointed at the site's pages;
* ``reference/methods.md``: `bench.registry.METHODS`, each method's options read from its
  config dataclass (`pruners.options`) and the flags `prunebench prune` gives them;
* ``reference/laws.md``: `fitting.laws.LAWS`, each law's formula and candidate note;
* ``reference/studies.md``: the built-in study files, read with `bench.studies.load_study`;
* ``reference/models.md``: the model aliases and zoo families registries;
* ``reference/cli.md``: the ``--help`` of every `prunebench` command (`bench.cli.COMMANDS`);
* ``reference/pytest-options.md``: the options the pytest plugin adds (the plugin its
  ``pytest11`` entry point or the root ``conftest.py`` names);
* ``results/index.md``: the hand-written intro, followed by a list of every results page.

Run it outside mkdocs with ``python docs/gen_reference.py OUT_DIR`` to see the pages.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import inspect
import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
GENERATED = "_Generated from the code at every docs build (`docs/gen_reference.py`); do not edit._"

os.environ.setdefault("COLUMNS", "100")  # argparse wraps --help to the terminal; fix it for stable pages
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here may reach the network


def _cell(text) -> str:
    """Text inside a markdown table cell: one line, its pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def md_table(rows, headers) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _prose(text: str) -> str:
    """A docstring paragraph as markdown: `*` escaped, so Python's ** is not read as bold."""
    return " ".join(text.split()).replace("*", "\\*")


# -- the README as the home page --------------------------------------------------------------------

def index_page() -> str:
    text = (ROOT / "README.md").read_text()
    # README links docs/x.md (right on GitHub); the site's home page sits inside docs/.
    return re.sub(r"\]\(docs/", "](", text)


# -- pruning methods -------------------------------------------------------------------------------

def _kind(opt) -> str:
    if opt.kind is None:
        return "parsed by the config"
    return opt.kind.__name__ + (" or none" if opt.optional and opt.default is None and not opt.required else "")


def _default(opt) -> str:
    if opt.required:
        return "required"
    if opt.default is None:
        return "none"
    if isinstance(opt.default, bool):
        return str(opt.default).lower()
    return f"`{opt.default}`"


def methods_page() -> str:
    from bench.cli import build_parser
    from bench.registry import METHODS, methods

    out = ["# Pruning methods", GENERATED,
           "Every method registered in `bench.registry.METHODS`. A study file sets a method's options "
           "in its `options` table (the *study key* column); `prunebench prune` takes them as the "
           "flags below. `--ratio`, `--seed` and `--batch-size` are shared by every method that "
           "declares the field. How to add a method: [Pruning methods](../methods.md#adding-a-pruning-method).",
           md_table([[f"[`{m.name}`](#{m.name})", m.summary, f"`{m.module}`"] for m in methods()],
                    ["method", "what it does", "module"])]
    parser = build_parser("prune")
    for m in methods():
        # The flags exactly as `prunebench prune` generates them (a clash gets a method prefix).
        args = parser.parse_args(["prune", "--method", m.name])
        flags = {f.name: f.flag for f in args._method_flags if f.method == m.name}
        shared = {"ratio": "--ratio", "seed": "--seed", "batch_size": "--batch-size"}
        rows = []
        for o in m.options:
            flag = shared.get(o.name) or flags.get(o.name) or "study file only"
            flag = flag if flag == "study file only" else f"`{flag}`" + (f" `{o.metavar}`" if o.metavar else "")
            rows.append([f"`{o.name}`", flag, _kind(o), _default(o),
                         ", ".join(f"`{c}`" for c in o.choices) if o.choices else "", o.help])
        samples, seq_len = m.calibration_shape
        out += [f"## `{m.name}` {{#{m.name}}}", _prose(m.summary),
                f"Module `{m.module}`, config `{m.config_cls.__name__}`. Default calibration when the "
                f"configuration draws any: {samples} samples × {seq_len} tokens.",
                md_table(rows, ["study key", "prunebench prune flag", "type", "default", "choices", "help"])]
        extra = getattr(m.config_cls, "cli_extra", {})
        if extra:
            out.append("Command-line flags that set several fields at once: " + "; ".join(
                f"`--{name}` `{spec.get('metavar', name.upper())}`: {spec['help']}" for name, spec in extra.items())
                + ".")
    return "\n\n".join(out) + "\n"


# -- laws ------------------------------------------------------------------------------------------

def laws_page() -> str:
    from fitting.laws import LAWS

    laws = list(LAWS.values())
    candidates = sorted((law for law in laws if type(law).candidate), key=lambda law: type(law).candidate_rank)
    out = ["# Laws", GENERATED,
           "Every law form registered in `fitting.laws.LAWS`. `--law NAME` picks the law a run fits "
           "(`pytest bench`, `prunebench fit`, `prunebench report`); every study group is also fitted "
           "with each candidate form, in the order below, for the form comparison. How the fit works: "
           "[The scaling law](../law.md).",
           md_table([[type(law).candidate_rank, f"[`{law.name}`](#{law.name})", type(law).candidate]
                     for law in candidates], ["rank", "candidate form", "what distinguishes it"])]
    for law in laws:
        doc = inspect.cleandoc(type(law).__doc__ or "").split("\n\n")
        units = ", ".join(f"{name} in {law.units[name].label()}" for name in law.inputs)
        out += [f"## `{law.name}` {{#{law.name}}}", f"```text\n{law.describe()}\n```",
                *[_prose(p) for p in doc[1:] if p.strip()],
                f"Fitted parameters: {', '.join(f'`{p}`' for p in law.params)}. Inputs and default units: {units}. "
                f"Module `{type(law).__module__}`."
                + (f" Candidate form (rank {type(law).candidate_rank}): {type(law).candidate}." if type(law).candidate
                   else " Not a candidate form.")]
    return "\n\n".join(out) + "\n"


# -- built-in studies ------------------------------------------------------------------------------

def studies_page() -> str:
    from bench.studies import builtin_names, load_study, study_cases

    studies = [load_study(name) for name in builtin_names()]
    out = ["# Built-in studies", GENERATED,
           "Every profile of `pytest bench --profile NAME` is a study file shipped in `bench/studies/`, "
           "read here with the suite's own loader (`bench.studies.load_study`). Copy one, edit it and "
           "run it with `--study FILE`: see [Study files](../studies.md).",
           md_table([[f"[`{s.name}`](#{s.name})", len(study_cases(s)), s.description] for s in studies],
                    ["study", "cases", "description"])]
    for study in studies:
        path = Path(study.path).resolve()
        shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
        ids = [c.id for c in study_cases(study)]
        body = "\n".join("    " + line if line else "" for line in path.read_text().splitlines())
        out += [f"## `{study.name}` {{#{study.name}}}", _prose(study.description),
                f"File `{shown}`; {len(ids)} cases; law `{study.law}`"
                + (f"; held-out sizes {', '.join(f'`{h}`' for h in study.holdout)}" if study.holdout else "") + ".",
                "Case ids: " + ", ".join(f"`{i}`" for i in ids) + ".",
                f'??? note "{shown}"\n    ```toml\n{body}\n    ```']
    return "\n\n".join(out) + "\n"


# -- models ----------------------------------------------------------------------------------------

def models_page() -> str:
    from bench.sources.aliases import ALIASES
    from bench.training.zoo_families import FAMILIES

    return "\n\n".join([
        "# Model aliases and zoo families", GENERATED,
        "`--model` and a study's `[[models]] spec` take a hub id, a local directory, a GGUF file or one "
        "of these aliases (`bench.sources.aliases.ALIASES`). Every size of every zoo family is an alias. "
        "See [Models](../models.md).",
        md_table([[f"`{n}`", h] for n, h in ALIASES.listing()], ["alias", "what"]),
        "## Zoo families",
        "The nano zoo's families (`bench.training.zoo_families.FAMILIES`); a study names one with "
        "`[[models]] zoo = \"NAME\"`. See [Post-training and the nano zoo](../posttraining.md).",
        md_table([[f"`{n}`", h] for n, h in FAMILIES.listing()], ["family", "architecture and sizes"]),
    ]) + "\n"


# -- command lines ---------------------------------------------------------------------------------

def cli_page() -> str:
    from bench.cli import COMMANDS

    out = ["# `prunebench` commands", GENERATED,
           "Each command's `--help`, as `bench.cli` builds it. A mistake in any of them is one line on "
           "stderr and exit code 2.",
           md_table([[f"[`{n}`](#prunebench-{n})", h] for n, (_, h) in COMMANDS.items()], ["command", "what"])]
    for name, (module, help_) in COMMANDS.items():
        p = argparse.ArgumentParser(prog=f"prunebench {name}", description=help_)
        importlib.import_module(module).add_parser(p)
        out += [f"## `prunebench {name}` {{#prunebench-{name}}}", f"```text\n{p.format_help().rstrip()}\n```"]
    return "\n\n".join(out) + "\n"


class _RecordingParser:
    """Stands in for pytest's parser: records the options a plugin's `pytest_addoption` adds."""

    def __init__(self):
        self.groups: dict[str, tuple[str, list]] = {}

    def getgroup(self, name, description=""):
        parser = self
        entry = self.groups.setdefault(name, (description, []))

        class Group:
            def addoption(self, *names, **kwargs):
                entry[1].append((names, kwargs))

        return Group()

    def addoption(self, *names, **kwargs):
        self.getgroup("general").addoption(*names, **kwargs)

    def addini(self, *args, **kwargs):
        pass


def _suite_plugins() -> list[str]:
    """The modules of the suite's pytest plugin: those a ``pytest11`` entry point of this project
    names (in pyproject.toml, or installed), and those the root ``conftest.py`` loads through
    ``pytest_plugins``."""
    from importlib import metadata

    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    ours = ("bench", "pruners", "fitting", "reports")
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text()).get("project", {})
    values = list(declared.get("entry-points", {}).get("pytest11", {}).values())
    values += [ep.value for ep in metadata.entry_points(group="pytest11")]
    found = [v.split(":")[0].strip() for v in values if v.split(".")[0] in ours]
    conftest = ROOT / "conftest.py"
    if conftest.is_file():
        spec = importlib.util.spec_from_file_location("_root_conftest", conftest)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        found += [p for p in getattr(module, "pytest_plugins", ()) if p.split(".")[0] in ours]
    plugins = list(dict.fromkeys(found))
    if not plugins:
        raise RuntimeError("no prunebench pytest plugin found: no pytest11 entry point of ours in "
                           "pyproject.toml or installed, nothing of ours in conftest.py's pytest_plugins")
    return plugins


def pytest_options_page() -> str:
    plugins = _suite_plugins()
    recorder = _RecordingParser()
    for plugin in plugins:
        hook = getattr(importlib.import_module(plugin), "pytest_addoption", None)
        if hook is not None:
            hook(recorder)
    out = ["# `pytest bench` options", GENERATED,
           f"The options the suite's pytest plugin (`{', '.join(plugins)}`) adds; `pytest --help` lists them "
           "under the same group. Each is checked when pytest starts: a bad value is one line and exit "
           "status 4, before any case runs. See [Running the benchmark](../running.md)."]
    for name, (description, options) in recorder.groups.items():
        rows = [[" ".join(f"`{n}`" for n in names) + (f" `{kw['metavar']}`" if kw.get("metavar") else ""),
                 (kw.get("help") or "").replace("%%", "%")] for names, kw in options]
        out += [f"## {description or name}", md_table(rows, ["option", "what"])]
    return "\n\n".join(out) + "\n"


# -- results ---------------------------------------------------------------------------------------

def results_listing() -> str:
    """A table of every page in docs/results/: its title and the commit its header names."""
    rows = []
    for page in sorted((DOCS / "results").glob("*.md")):
        if page.name == "index.md":
            continue
        text = page.read_text()
        title = next((line[2:].strip() for line in text.splitlines() if line.startswith("# ")), page.stem)
        commit = re.search(r"^- \*\*Commit\*\*: (.+)$", text, re.M)
        rows.append([f"[{title}]({page.name})", commit.group(1) if commit else "–"])
    return "\n\n## Pages\n\n" + GENERATED + "\n\n" + md_table(rows, ["page", "commit"]) + "\n"


PAGES = {
    "index.md": index_page,
    "reference/methods.md": methods_page,
    "reference/laws.md": laws_page,
    "reference/studies.md": studies_page,
    "reference/models.md": models_page,
    "reference/cli.md": cli_page,
    "reference/pytest-options.md": pytest_options_page,
}


def generate(write) -> None:
    """Write every generated page through `write(path, text, append)`."""
    for path, render in PAGES.items():
        write(path, render(), False)
    write("results/index.md", results_listing(), True)


if __name__ == "__main__":  # python docs/gen_reference.py OUT_DIR
    if len(sys.argv) != 2:
        sys.exit("usage: python docs/gen_reference.py OUT_DIR  (writes the generated pages there)")
    out_dir = Path(sys.argv[1])

    def _write(path, text, append):
        target = out_dir / path
        target.parent.mkdir(parents=True, exist_ok=True)
        base = (DOCS / path).read_text() if append and (DOCS / path).is_file() else ""
        target.write_text(base + text)

    generate(_write)
else:  # under mkdocs-gen-files, which runs this file with runpy
    import mkdocs_gen_files

    def _write(path, text, append):
        with mkdocs_gen_files.open(path, "a" if append else "w") as f:
            f.write(text)

    generate(_write)
