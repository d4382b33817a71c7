"""Shared fixtures of every tier, the tiers themselves, and the markers a test gets from what it uses.

Tiers are folders:

* ``tests/unit``: in process; no child process, no zoo build, no real model. ``pytest`` alone
  runs it (pyproject's ``testpaths``): the fast loop, minutes on 2 cores.
* ``tests/integration``: zoo builds, real models, and child processes other than `pytest bench`
  (the console script, lm-eval's CLI, a fresh interpreter, gloo ranks, killed builders).
* ``tests/e2e``: real `pytest bench` runs in a subprocess, one per behaviour.
* ``tests/benchmarks``: the speed benchmarks; ``--benchmark-disable`` runs each once, as a check.
* ``tests/cuda``: the GPU check (skipped without CUDA).

Markers come from the folder (``unit``, ``integration``, ``e2e``, ``speed``, ``cuda``) and from
the fixtures a test requests, directly or through other fixtures (``tests/tiers.py``: ``e2e``
for a real `pytest bench`, ``subprocess`` for another child process, ``slow`` for a zoo build
or a real model, ``speed`` for pytest-benchmark). A test whose fixtures do not fit its folder
fails with the folder it belongs in, so the markers and the folders cannot drift apart; so
``pytest tests -m "not slow and not e2e"`` is a quick run of every tier.

Helper modules beside this file (``*_helpers.py``, ``tiers.py``, ``synthetic_records.py``,
``toy_method.py``, ``paper_study.py``) import from every tier: pytest puts this directory on
``sys.path`` when it loads this conftest.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# pytester restores sys.modules after each of its tests, and a C extension cannot be loaded a
# second time in one process: scipy's (which the fit imports on first use) is imported here,
# before any test can first import it inside a pytester test.
import scipy.optimize  # noqa: E402,F401

from data_helpers import find_data_dir, missing_data
from plugin_helpers import MATRIX
from process_helpers import one_torch_thread
from tiers import TESTS, USES, placement, tier_of

# One torch thread per test process and its children (process_helpers.one_torch_thread).
one_torch_thread()

MISPLACED = pytest.StashKey[str]()


def pytest_collection_modifyitems(config, items):
    for item in items:
        path = Path(str(item.path))
        if TESTS not in path.resolve().parents:
            continue  # not a test of this suite (e.g. `pytest bench tests`)
        tier = tier_of(path)
        fixturenames = set(getattr(item, "fixturenames", ()))
        uses = {USES[f] for f in fixturenames if f in USES}
        for name in sorted(uses | ({tier} if tier else set())):
            item.add_marker(name)
        why = placement(tier, uses, fixturenames)
        if why is not None:
            item.stash[MISPLACED] = why


def pytest_runtest_setup(item):
    why = item.stash.get(MISPLACED, None)
    if why is not None:
        pytest.fail(f"{item.nodeid}: {why} (tests/conftest.py)", pytrace=False)


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
    """A pytester directory that holds the benchmark matrix test, with the local data and no
    hub; the plugin comes from prunebench's pytest11 entry point, as in a user's directory."""
    monkeypatch.setenv("PRUNEBENCH_DATA_DIR", str(data_dir))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    pytester.makepyfile(test_matrix=MATRIX)
    return pytester
