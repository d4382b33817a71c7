"""The `prunebench` console script.

Each sub-command lives in its own module under `bench/commands/` and exposes
`add_parser(subparsers)` plus a `run(args) -> int`. Modules are imported lazily so
`prunebench fit` never pays for importing torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from bench import isa
from bench.errors import USER_ERRORS, one_line

# name -> (module, one-line help). The module is only imported when the command runs
# or when its parser has to be built.
COMMANDS = {
    "ppl": ("bench.commands.ppl", "measure perplexity with the LLM-Pruner protocol"),
    "prune": ("bench.commands.prune", "prune a model and report exact parameter counts"),
    "fit": ("bench.commands.fit", "fit a scaling law to records or to a table of points"),
    "report": ("bench.commands.report", "re-render report.md and plots from stored records"),
    "predict": ("bench.commands.predict", "predict a pruned model's post-training curve and token budget from a fit.json"),
    "tables": ("bench.commands.tables", "a results page (zoo, recovery, extrapolation tables under the run's provenance) from a results directory"),
    "eval": ("bench.commands.eval", "zero-shot tasks through lm-eval on a model in memory"),
    "studies": ("bench.commands.studies", "list the built-in studies, or expand one into its cases with exact parameter counts"),
}


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on bad options already; make its message a single line too."""

    def error(self, message):  # noqa: D401 - argparse API
        self.exit(2, f"prunebench: error: {' '.join(message.split())}\n")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = _Parser(prog="prunebench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name, (module, help_) in COMMANDS.items():
        if only is not None and name != only:
            # Cheap placeholder so `prunebench --help` lists every command.
            sub.add_parser(name, help=help_)
            continue
        mod = importlib.import_module(module)
        cmd = sub.add_parser(name, help=help_, description=help_)
        mod.add_parser(cmd)
        cmd.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    isa.pin()  # the CPU kernels' ISA, before a command imports torch (`bench.isa`)
    argv = list(sys.argv[1:] if argv is None else argv)
    # Only build the parser of the command being run, so unrelated heavy imports are skipped.
    only = argv[0] if argv and argv[0] in COMMANDS else None
    parser = build_parser(only)
    args = parser.parse_args(argv)
    try:
        isa.wanted()  # a bad $PRUNEBENCH_CPU_ISA, refused here (pin ignores it)
        return int(args._run(args) or 0)
    except USER_ERRORS as exc:
        print(f"prunebench: error: {one_line(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
