"""Shared fixtures for the unit and integration tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# pytester restores sys.modules after each of its tests, and a C extension cannot be loaded a
# second time in one process: scipy's (which the fit imports on first use) is imported here,
# before any test can first import it inside a pytester test.
import scipy.optimize  # noqa: E402,F401

REPO = Path(__file__).resolve().parents[1]


def find_data_dir() -> Path | None:
    """$PRUNEBENCH_DATA_DIR, else ../shared/data beside the checkout (the CI layout)."""
    env = os.environ.get("PRUNEBENCH_DATA_DIR")
    if env:
        return Path(env)
    sibling = REPO.parent / "shared" / "data"
    return sibling if sibling.is_dir() else None


def missing_data(reason: str) -> None:
    """Skip a test that needs data, except in CI, where missing data must fail the run.

    A CI job that lost its copy of shared/data would otherwise skip every data test and go
    green; `CI` is set by CI systems (and by this project's .ci/run environment).
    """
    if os.environ.get("CI", "").lower() not in ("", "0", "false", "no"):
        pytest.fail(f"{reason} (CI is set, so missing data fails instead of skipping)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = find_data_dir()
    if path is None or not path.is_dir():
        missing_data(f"no local data at {path or '../shared/data'}: set PRUNEBENCH_DATA_DIR to a copy of shared/data")
    return path


@pytest.fixture
def isolated_env(monkeypatch, tmp_path):
    """No hub, no inherited data/results/cache settings: each test states what it uses."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    for var in ("PRUNEBENCH_DATA_DIR", "PRUNEBENCH_RESULTS_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PRUNEBENCH_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path


@pytest.fixture(scope="session")
def chinchilla_csv(data_dir) -> Path:
    """The Chinchilla points (Besiroglu et al.'s extraction) in the data directory."""
    path = data_dir / "chinchilla" / "svg_extracted_data.csv"
    if not path.is_file():
        missing_data(f"no Chinchilla points at {path}: set PRUNEBENCH_DATA_DIR to a copy of shared/data")
    return path


@pytest.fixture
def bench_repo(pytester, data_dir, monkeypatch):
    """A pytester directory that holds the benchmark matrix test, with the local data and no
    hub; the plugin comes from prunebench's pytest11 entry point, as in a user's directory."""
    monkeypatch.setenv("PRUNEBENCH_DATA_DIR", str(data_dir))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    pytester.makepyfile(test_matrix=(REPO / "bench" / "test_matrix.py").read_text())
    return pytester
