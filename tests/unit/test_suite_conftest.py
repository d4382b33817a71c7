"""The suite's own rules: what a test does without data, and which tier and markers a test gets."""

from __future__ import annotations

import pytest

from data_helpers import missing_data
from tiers import TESTS, USES, placement, tier_of


@pytest.mark.parametrize("ci, outcome", [("true", pytest.fail.Exception), ("", pytest.skip.Exception),
                                         ("false", pytest.skip.Exception)])
def test_missing_data_fails_in_ci_and_skips_elsewhere(monkeypatch, ci, outcome):
    """A CI job that lost its copy of shared/data must fail, not skip every data test and pass."""
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="no local data at .*no-such-dir.*PRUNEBENCH_DATA_DIR"):
        missing_data("no local data at /tmp/no-such-dir: set PRUNEBENCH_DATA_DIR to a copy of shared/data")


# ----------------------------------------------------------------------------- tiers and markers


@pytest.mark.parametrize("path, tier", [
    ("unit/test_x.py", "unit"), ("integration/test_x.py", "integration"), ("e2e/test_x.py", "e2e"),
    ("benchmarks/bench_x.py", "speed"), ("cuda/test_gpu_check.py", "cuda"), ("test_x.py", None),
])
def test_the_folder_is_the_tier(path, tier):
    assert tier_of(TESTS / path) == tier


@pytest.mark.parametrize("fixtures, marker", [
    ({"bench_repo"}, "e2e"), ({"pytester"}, "e2e"), ({"run_pytest_bench"}, "e2e"), ({"child_env"}, "subprocess"),
    ({"zoo_cache"}, "slow"), ({"new_zoo_cache"}, "slow"), ({"smollm2"}, "slow"), ({"benchmark"}, "speed"),
])
def test_what_a_test_uses_marks_it_and_keeps_it_out_of_the_unit_tier(fixtures, marker):
    uses = {USES[f] for f in fixtures}
    assert uses == {marker}
    assert placement("unit", uses, fixtures).startswith(f"its fixtures mark it {marker}: it belongs in tests/")
    home = {"e2e": "e2e", "subprocess": "integration", "slow": "integration", "speed": "speed"}[marker]
    assert placement(home, uses, fixtures) is None


def test_a_test_outside_the_tiers_or_of_the_matrix_is_refused():
    assert "every test lives in a tier folder" in placement(None, set(), set())
    assert "`pytest bench` runs those" in placement("e2e", set(), {"bench_case", "run_case"})


def test_this_test_is_marked_unit_and_nothing_else(request):
    names = {m.name for m in request.node.iter_markers()}
    assert "unit" in names and not names & {"integration", "e2e", "speed", "subprocess", "slow"}
