"""Profiles: named sets of benchmark cases (DESIGN.md section 2).

A profile is a study file (`bench.studies`): the built-in ones (nano, smoke, smol, tiny, ...)
are the TOML files shipped in ``bench/studies/``, and `get_cases` also takes the path of a
user's own study file. Window caps and calibration sizes are part of a study because they
keep it inside its time budget; ``--full-eval`` lifts the window caps.

Profiles defined in Python (tests register small ones) go through `profile(name, help)`. Both kinds
are entries of one registry, `PROFILES` (`fitting.registry.Registry`): a name registered twice
(a Python profile named like a built-in study, or two Python profiles) is refused, an unknown
one gets a did-you-mean, and `profile_help` is its listing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from bench.studies.cases import Case
from bench.errors import UsageError
from fitting.registry import Registry

DEFAULT_PROFILE = "nano"


@dataclass(frozen=True)
class ProfileOptions:
    """Run-wide switches that change which cases a profile yields."""

    full_eval: bool = False


def _builtin_studies(registry: Registry) -> None:
    """Discovery: every study file shipped in ``bench/studies/``, its help its description."""
    from bench.studies.schema import BUILTIN_DIR, SUFFIX, builtin_names, read_toml

    for name in builtin_names():
        path = BUILTIN_DIR / f"{name}{SUFFIX}"
        help_ = str(read_toml(path).get("study", {}).get("description", ""))
        registry.add(name, path, origin=f"bench/studies/{path.name}", help=help_)


# name -> the Path of a built-in study file, or a Python function fn(options) -> cases.
PROFILES: Registry[Path | Callable[[ProfileOptions], list[Case]]] = Registry(
    "profile", error=UsageError, sources=(_builtin_studies,),
    unknown="choose one of {known}, or pass a study file (--study FILE)")


def profile(name: str, help: str):
    """Register a Python function ``fn(options) -> cases`` as a profile (the built-in ones are
    study files); a name already registered is refused."""
    return PROFILES.register(name, help=help)


def _python_profile(name: str):
    """The function of a profile defined in Python, or None (a study file, a path)."""
    if is_study_path(name) or name not in PROFILES:
        return None
    entry = PROFILES[name]
    return None if isinstance(entry, Path) else entry


def profile_names() -> list[str]:
    return PROFILES.names()


def profile_help() -> str:
    """'name: description; ...' of every profile, read from the study files' [study] tables."""
    return PROFILES.describe()


def is_study_path(name: str) -> bool:
    """Whether `name` is a study file path rather than a profile name."""
    return "/" in str(name) or str(name).endswith(".toml")


def get_study(name: str):
    """The validated study (`bench.studies.Study`) of a built-in profile or a study file path."""
    from bench.studies import load_study

    if not is_study_path(name) and not isinstance(PROFILES.lookup(name), Path):
        raise UsageError(f"profile {name!r} is defined in Python ({PROFILES.origin(name)}) and has no study file")
    return load_study(name)


def get_cases(name: str, options: ProfileOptions | None = None) -> list[Case]:
    """The cases of profile `name` (a built-in study, a Python profile, or a study file path)."""
    options = options or ProfileOptions()
    fn = _python_profile(name)
    if fn is not None:
        cases = fn(options)
        ids = [c.id for c in cases]
        dupes = {i for i in ids if ids.count(i) > 1}
        if dupes:  # a programming error in a Python profile, not a user error
            raise RuntimeError(f"profile {name} defines duplicate case ids: {sorted(dupes)}")
        return cases
    from bench.studies import study_cases

    return study_cases(get_study(name), full_eval=options.full_eval)


def option_defaults(name: str) -> dict:
    """What a study sets for the run-wide options, keyed by option name: its law, held-out
    sizes and default gates (a profile defined in Python sets none). An option given on the
    command line replaces its default."""
    if _python_profile(name) is not None:
        return {}
    study = get_study(name)
    gates = study.gates
    found = {"--law": study.law, "--holdout": list(study.holdout) or None,
             "--max-extrapolation-error": list(gates.max_extrapolation_error) or None,
             "--baseline": gates.baseline, "--max-ppl-regression": gates.max_ppl_regression,
             "--max-control-improvement": gates.max_control_improvement}
    return {k: v for k, v in found.items() if v is not None}


def __getattr__(name: str):
    # The nano study's ratios, for callers of the former Python profile's constant.
    if name == "NANO_RATIOS":
        return get_study("nano").method("depth").ratios
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
