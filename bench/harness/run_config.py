"""One run's configuration: the study read once, and the command line merged into it once.

`build_run_config` is the one place a run is configured. It reads and validates the study (a
built-in profile or a study file) a single time, expands its cases, and lays what the command
line gives (`CommandLine`) over what the study declares: the law, the held-out sizes and the
gates, each typed (`bench.studies.gates.GateSet`). Everything it checks fails before any case
spends compute, in one line: an unknown law, a held-out size the study does not post-train, a
law-gate scope that names no group of this run, a baseline that cannot be read.

The pytest plugin builds one `RunConfig` per process (an xdist worker builds the same from the
same command line); `prunebench` commands that only read results have no study and build none.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.errors import UsageError, did_you_mean
from bench.studies import Study, load_study, study_cases
from bench.studies.axes import parse_seeds
from bench.studies.cases import Case
from bench.studies.gates import GateSet, parse_gates
from bench.studies.profiles import DEFAULT_PROFILE, resolve_study
from reports.recipes import recipe_label


@dataclass(frozen=True)
class CommandLine:
    """What the command line says about the run; None where it says nothing (the study decides)."""

    study: str = DEFAULT_PROFILE  # a built-in study's name, or the path of a study file
    full_eval: bool = False
    resume: bool = False
    report: bool = True
    threads: int | None = None
    seeds: int | None = None  # --seeds N: seeds 0..N-1 instead of the study's
    law: str | None = None
    holdout: tuple[str, ...] | None = None
    max_extrapolation_error: tuple[str, ...] | None = None
    baseline: str | None = None
    max_ppl_regression: str | None = None
    max_control_improvement: str | None = None


@dataclass(frozen=True)
class RunConfig:
    """A validated run: the study, its cases, and the settings merged from the command line."""

    study: Study
    cases: tuple[Case, ...]
    seeds: tuple[int, ...]
    law: str
    holdout: tuple[str, ...] | None  # model keys held out; None: the largest size of each family
    gates: GateSet
    full_eval: bool = False
    resume: bool = False
    report: bool = True
    threads: int | None = None


def group_key(case: Case) -> str | None:
    """The law group ('family/method@recipe') a post-trained, pruned case's curve joins; None
    for a case that forms none. The fit groups records the same way (`bench.harness.fit_runs`)."""
    if case.recipe is None or case.unpruned:
        return None
    return f"{case.family or case.model}/{case.method}@{recipe_label(case.config()['posttrain'])}"


def case_group_names(cases) -> list[str]:
    """The group keys a run of `cases` can fit, before it runs."""
    return sorted({k for k in map(group_key, cases) if k is not None})


def build_run_config(cli: CommandLine) -> RunConfig:
    """Read the study once, expand it, and merge the command line into one `RunConfig`.

    Raises:
        UsageError: the study, a law, a held-out size, a gate or the thread count is wrong (one
            line naming it and the fix).
    """
    from fitting import available_laws

    if cli.threads is not None and cli.threads < 1:
        raise UsageError(f"--threads must be at least 1, got {cli.threads}")
    study = load_study(resolve_study(cli.study))
    seeds = parse_seeds(cli.seeds, "--seeds") if cli.seeds is not None else study.seeds
    cases = tuple(study_cases(study, full_eval=cli.full_eval, seeds=seeds))
    law = cli.law or study.law
    if cli.law is not None and cli.law not in available_laws():
        raise UsageError(f"unknown law {cli.law!r}{did_you_mean(cli.law, available_laws())}; "
                         f"choose one of {', '.join(available_laws())}")
    holdout = cli.holdout or study.holdout or None
    if cli.holdout:
        sizes = sorted({c.model_key for c in cases if c.recipe is not None})
        for size in cli.holdout:
            if size not in sizes:
                raise UsageError(f"--holdout {size!r} is not a post-trained size of study {study.name!r}"
                                 f"{did_you_mean(size, sizes)}; its sizes are {', '.join(sizes) or 'none (no post-training)'}")
    study_ppl = study.gates.ppl
    given = parse_gates(cli.max_extrapolation_error, cli.baseline, cli.max_ppl_regression, cli.max_control_improvement,
                        default_baseline=study_ppl.baseline if study_ppl else None,
                        default_regression=f"{study_ppl.max_regression}%" if study_ppl else None)
    gates = study.gates.merged(given)
    # A scope must name a group this run can fit; a study without post-training leaves that to
    # the end, against the stored records' groups.
    groups = case_group_names(cases)
    if groups:
        gates.check_groups(groups)
    return RunConfig(study, cases, seeds, law, tuple(holdout) if holdout else None, gates.prepared(),
                     full_eval=cli.full_eval, resume=cli.resume, report=cli.report, threads=cli.threads)
