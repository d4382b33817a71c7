"""`pytest bench --benchmark-compare` against a saved run of another study is refused at start-up,
in one line naming both studies (issue 20 item 7); a run of the same study is compared."""

from __future__ import annotations

import json

# Imported before pytester snapshots sys.modules: an in-process run that imports them first has
# them dropped afterwards, and torch.distributed cannot register its operators twice.
import torch.distributed.tensor  # noqa: F401
import transformers.models.llama.modeling_llama  # noqa: F401

pytest_plugins = ["pytester"]


def _saved(storage, study: str) -> None:
    """A run saved by `pytest bench --benchmark-autosave` (its machine_info names the study)."""
    folder = storage / "Linux-CPython-3.11-64bit"
    folder.mkdir(parents=True)
    (folder / "0001_saved.json").write_text(json.dumps({
        "machine_info": {"node": "ci", "prunebench": {"study": study}}, "commit_info": {}, "benchmarks": [],
        "datetime": "2026-12-06T00:00:00", "version": "5.1.0"}))


def _compare(pytester, saved_study: str):
    """`pytest bench --profile smoke --benchmark-compare=0001` against a saved run of `saved_study`."""
    storage = pytester.path / "bench-store"
    _saved(storage, saved_study)
    pytester.makepyfile(test_x="def test_x():\n    pass\n")
    return pytester.runpytest_inprocess("--profile", "smoke", f"--benchmark-storage={storage}",
                                        "--benchmark-compare=0001", "-p", "no:cacheprovider")


def test_compare_against_another_study_is_one_line(pytester):
    result = _compare(pytester, "nano")
    assert result.ret == 4
    err = "\n".join(result.errlines)
    assert "the saved run is of study 'nano' and this run is of study 'smoke'" in err
    assert sum("study 'nano'" in line for line in result.errlines) == 1


def test_compare_against_the_same_study_runs(pytester):
    result = _compare(pytester, "smoke")
    assert result.ret == 0
    result.assert_outcomes(passed=1)
