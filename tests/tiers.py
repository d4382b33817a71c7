"""The test tiers and the markers a test gets from its fixtures (applied by tests/conftest.py).

Plain data and functions, so tests/unit/test_suite_conftest.py checks the rules directly.
"""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parent

#: Folder under tests/ -> the tier's marker.
TIERS = {"unit": "unit", "integration": "integration", "e2e": "e2e", "benchmarks": "speed", "cuda": "cuda"}
#: Fixture -> the marker a test that requests it gets.
USES = {
    "pytester": "e2e",  # `pytest bench` in a subprocess
    "bench_repo": "e2e",
    "run_pytest_bench": "e2e",
    "child_env": "subprocess",  # any other child process
    "zoo_cache": "slow",  # builds nano zoo models
    "new_zoo_cache": "slow",
    "smollm2": "slow",  # the real SmolLM2-135M
    "benchmark": "speed",  # pytest-benchmark
}
#: Tier -> the markers from `USES` its tests may carry.
ALLOWED = {
    "unit": set(),
    "integration": {"subprocess", "slow"},
    "e2e": {"e2e", "subprocess", "slow"},
    "speed": {"speed", "subprocess", "slow"},
    "cuda": {"subprocess", "slow", "speed"},
}
#: Where a test with each marker belongs, for the message of a misplaced one.
HOME = {"e2e": "tests/e2e", "subprocess": "tests/integration", "slow": "tests/integration",
        "speed": "tests/benchmarks"}


def tier_of(path: Path) -> str | None:
    """The tier marker of a test file under tests/ (None outside any tier folder)."""
    try:
        parts = Path(path).resolve().relative_to(TESTS).parts
    except ValueError:
        return None
    return TIERS.get(parts[0]) if len(parts) > 1 else None


def placement(tier: str | None, uses: set[str], fixturenames) -> str | None:
    """Why a test with these markers does not belong in `tier` (None when it does)."""
    if "bench_case" in fixturenames:
        return "it requests `bench_case`, the benchmark matrix's parameter: `pytest bench` runs those"
    if tier is None:
        return "every test lives in a tier folder: tests/unit, tests/integration, tests/e2e, tests/benchmarks"
    wrong = sorted(uses - ALLOWED[tier])
    if wrong:
        homes = sorted({HOME[m] for m in wrong})
        return f"its fixtures mark it {', '.join(wrong)}: it belongs in {' or '.join(homes)}"
    return None
