"""Where the tests find shared/data, and what a test does when it is missing.

Used by the `data_dir` fixture (tests/conftest.py) and tested directly
(tests/unit/test_suite_conftest.py).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def find_data_dir() -> Path | None:
    """$PRUNEBENCH_DATA_DIR, else ../shared/data beside the checkout (the CI layout)."""
    env = os.environ.get("PRUNEBENCH_DATA_DIR")
    if env:
        return Path(env)
    sibling = REPO.parent / "shared" / "data"
    return sibling if sibling.is_dir() else None


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def missing_data(reason: str) -> None:
    """Skip a test that needs data, except in CI, where missing data must fail the run.

    A CI job that lost its copy of shared/data would otherwise skip every data test and go
    green; `CI` is set by CI systems (and by this project's .ci/run environment).
    """
    if in_ci():
        pytest.fail(f"{reason} (CI is set, so missing data fails instead of skipping)", pytrace=False)
    pytest.skip(reason)
