"""The suite's own rules: where data comes from, and what a test does without it."""

from __future__ import annotations

import pytest

from data_helpers import missing_data


@pytest.mark.parametrize("ci, outcome", [("true", pytest.fail.Exception), ("", pytest.skip.Exception),
                                         ("false", pytest.skip.Exception)])
def test_missing_data_fails_in_ci_and_skips_elsewhere(monkeypatch, ci, outcome):
    """A CI job that lost its copy of shared/data must fail, not skip every data test and pass."""
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="no local data at .*no-such-dir.*PRUNEBENCH_DATA_DIR"):
        missing_data("no local data at /tmp/no-such-dir: set PRUNEBENCH_DATA_DIR to a copy of shared/data")
