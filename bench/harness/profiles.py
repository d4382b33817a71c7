"""Profiles: named sets of benchmark cases (DESIGN.md section 2).

A profile is a study file (`bench.studies`): the built-in ones (nano, smoke, smol, tiny, ...)
are the TOML files shipped in ``bench/studies/``, and `get_cases` also takes the path of a
user's own study file. Window caps and calibration sizes are part of a study because they
keep it inside its time budget; ``--full-eval`` lifts the window caps.

Profiles defined in Python (tests register small ones) go through `profile(name, help)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from bench.harness.cases import Case
from bench.errors import UsageError, did_you_mean

DEFAULT_PROFILE = "nano"


@dataclass(frozen=True)
class ProfileOptions:
    """Run-wide switches that change which cases a profile yields."""

    full_eval: bool = False


# Profiles registered from Python: name -> (fn(options) -> cases, one-line help).
_PROFILES: dict[str, tuple[Callable[[ProfileOptions], list[Case]], str]] = {}


def profile(name: str, help: str):
    """Register a Python function as a profile (the built-in ones are study files)."""

    def deco(fn):
        _PROFILES[name] = (fn, help)
        return fn

    return deco


def _builtin() -> list[str]:
    from bench.studies.schema import builtin_names

    return builtin_names()


def profile_names() -> list[str]:
    return sorted(set(_builtin()) | set(_PROFILES))


def profile_help() -> str:
    """'name: description; ...' of every profile, read from the study files' [study] tables."""
    from bench.studies.schema import BUILTIN_DIR, SUFFIX, read_toml

    helps = {n: h for n, (_, h) in _PROFILES.items()}
    for name in _builtin():
        helps.setdefault(name, str(read_toml(BUILTIN_DIR / f"{name}{SUFFIX}").get("study", {}).get("description", "")))
    return "; ".join(f"{n}: {h}" for n, h in sorted(helps.items()))


def is_study_path(name: str) -> bool:
    """Whether `name` is a study file path rather than a profile name."""
    return "/" in str(name) or str(name).endswith(".toml")


def get_study(name: str):
    """The validated study (`bench.studies.Study`) of a built-in profile or a study file path."""
    from bench.studies import load_study

    if not is_study_path(name) and name not in _builtin():
        names = profile_names()
        raise UsageError(f"unknown profile {name!r}{did_you_mean(name, names)}; choose one of {', '.join(names)}, "
                         f"or pass a study file (--study FILE)")
    return load_study(name)


def get_cases(name: str, options: ProfileOptions | None = None) -> list[Case]:
    """The cases of profile `name` (a built-in study, a Python profile, or a study file path)."""
    options = options or ProfileOptions()
    if name in _PROFILES and not is_study_path(name):
        cases = _PROFILES[name][0](options)
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
    if name in _PROFILES and not is_study_path(name):
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
