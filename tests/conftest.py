"""Shared fixtures of the unit, integration and end-to-end tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from data_helpers import find_data_dir, missing_data
from plugin_helpers import MATRIX

TESTS = Path(__file__).resolve().parent

# ----------------------------------------------------------------------------- fixtures


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


@pytest.fixture(scope="session")
def zoo_cache(tmp_path_factory) -> Path:
    """A cache directory shared by the session's tests: each nano zoo model is built once.

    Its entries are keyed by every input of a build (`bench.training.zoo`), so tests that
    share it get the model they would have built. A test that counts builds takes
    `new_zoo_cache` instead.
    """
    return tmp_path_factory.mktemp("zoo-cache")


@pytest.fixture
def new_zoo_cache(tmp_path) -> Path:
    """An empty cache directory of this test's own, where it builds zoo models."""
    path = tmp_path / "zoo-cache"
    path.mkdir()
    return path


@pytest.fixture
def child_env() -> dict:
    """The environment of a child process the test starts: this one's, offline.

    Requesting it marks the test `subprocess` (tests/integration, tests/e2e).
    """
    return {**os.environ, "HF_HUB_OFFLINE": "1"}


@pytest.fixture(scope="module")
def run_pytest_bench():
    """`pytest bench ARGS` in the checkout, as a user types it, in a subprocess: `run(*args, env=...)`.

    Requesting it marks the test `e2e`.
    """
    import subprocess
    import sys

    def run(*args, env: dict) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "pytest", "bench", "-p", "no:cacheprovider", "-q", *args],
                              cwd=TESTS.parent, env=env, capture_output=True, text=True, timeout=900)

    return run


@pytest.fixture
def bench_repo(pytester, data_dir, monkeypatch):
    """A pytester directory that looks like the repo: the plugin loaded by its conftest and the
    benchmark matrix test, with the local data and no hub."""
    monkeypatch.setenv("PRUNEBENCH_DATA_DIR", str(data_dir))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    pytester.makeconftest('pytest_plugins = ["bench.harness.plugin"]')
    pytester.makepyfile(test_matrix=MATRIX)
    return pytester
