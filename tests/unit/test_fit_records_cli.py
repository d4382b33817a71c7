"""`prunebench fit --results-dir`: the law fitted to stored records, as JSON."""

from __future__ import annotations

import json

import pytest

from bench.cli import main
from bench.sources.records import write_record
from reports.recipes import recipe_label
from synthetic_records import RECIPE, synthetic_records


@pytest.fixture
def results(tmp_path):
    for rec in synthetic_records(noise=0.001):
        write_record(tmp_path, rec)
    return tmp_path


def test_json_has_constants_metrics_and_extrapolation(results, capsys):
    assert main(["fit", "--results-dir", str(results), "--law", "p2", "--holdout", "s4", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    full = recipe_label(RECIPE)
    assert set(out["extrapolation_error"]) == {f"synth-llama/depth@{full}/s4", f"synth-llama/nm@{full}/s4"}
    assert all(v < 1.0 for v in out["extrapolation_error"].values())
    depth = next(g for g in out["groups"] if g["method"] == "depth")
    assert set(depth["fit"]["constants"]) == {"N_C", "D_C", "E", "alpha", "beta", "gamma", "delta"}
    assert depth["within_run"]["r2"] > 0.9 and depth["fit"]["units"]["D"]["scale"] == 1e6


def test_single_group_has_top_level_constants(tmp_path, capsys):
    for rec in synthetic_records():
        if rec.method == "depth":
            write_record(tmp_path, rec)
    assert main(["fit", "--results-dir", str(tmp_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["constants"]["beta"] == pytest.approx(0.6, rel=0.05)  # the true beta of the curves
    assert "mape" in out["metrics"]


@pytest.mark.parametrize(("args", "message"), [
    (["--holdout", "xl"], "held-out size 'xl' is not in the records"),
    (["--law", "p3"], "unknown law 'p3'"),
])
def test_bad_input(results, capsys, args, message):
    assert main(["fit", "--results-dir", str(results), *args]) == 2
    assert message in capsys.readouterr().err


def test_human_output_shows_verdicts_and_recipes(results, capsys):
    """Without a bootstrap nothing can be judged: every constant says so instead of a bare number."""
    assert main(["fit", "--results-dir", str(results)]) == 0
    out = capsys.readouterr().out
    assert "synth-llama/depth@full-" in out and "recipe full, lr 0.0005 constant" in out
    assert "not identified: 3 sizes for 3 size parameters (n_c, alpha, delta)" in out
    assert "(not assessed: no bootstrap; pass --bootstrap N)" in out and "gap error at the final checkpoint" in out


def test_no_posttraining_records(tmp_path, capsys):
    assert main(["fit", "--results-dir", str(tmp_path)]) == 2
    assert "no post-training records" in capsys.readouterr().err
