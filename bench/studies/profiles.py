"""Profiles: the built-in studies by name (DESIGN.md section 2).

A profile is a study file shipped in ``bench/studies/`` (nano, smoke, smol, tiny, ...); a user
runs their own with ``pytest bench --study FILE``. `PROFILES` is the registry of the built-in
ones (`fitting.registry.Registry`: an unknown name gets a did-you-mean, `profile_help` is its
listing with each file's description), filled by discovering the folder's files.
"""

from __future__ import annotations

from pathlib import Path

from bench.errors import UsageError
from fitting.registry import Registry

DEFAULT_PROFILE = "nano"


def _builtin_studies(registry: Registry) -> None:
    """Discovery: every study file shipped in ``bench/studies/``, its help its description."""
    from bench.studies.schema import BUILTIN_DIR, SUFFIX, builtin_names, read_toml

    for name in builtin_names():
        path = BUILTIN_DIR / f"{name}{SUFFIX}"
        help_ = str(read_toml(path).get("study", {}).get("description", ""))
        registry.add(name, path, origin=f"bench/studies/{path.name}", help=help_)


# name -> the Path of a built-in study file.
PROFILES: Registry[Path] = Registry(
    "profile", error=UsageError, sources=(_builtin_studies,),
    unknown="choose one of {known}, or pass a study file (--study FILE)")


def profile_names() -> list[str]:
    return PROFILES.names()


def profile_help() -> str:
    """'name: description; ...' of every profile, read from the study files' [study] tables."""
    return PROFILES.describe()


def profile_path(name: str) -> Path:
    """The study file of built-in profile `name`; an unknown name is a one-line UsageError."""
    return PROFILES.lookup(name)


def is_study_path(name: str) -> bool:
    """Whether `name` is a study file's path rather than a profile's name."""
    return "/" in str(name) or str(name).endswith(".toml")


def resolve_study(name_or_path: str) -> Path:
    """The study file of a profile name (an unknown one gets the registry's did-you-mean) or
    of a path."""
    return Path(name_or_path) if is_study_path(name_or_path) else profile_path(name_or_path)
