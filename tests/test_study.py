"""The study over records: grouping, fitting, extrapolation, optimal tokens, bad input."""

from __future__ import annotations

import pytest

from bench.errors import UsageError
from bench.study import StudyConfig, group_runs, run_study
from synthetic_records import synthetic_records


@pytest.fixture(scope="module")
def study():
    return run_study(synthetic_records(noise=0.001), StudyConfig(bootstrap=20))


def test_groups_by_family_and_method():
    groups = group_runs(synthetic_records())
    assert set(groups) == {("synth-llama", "depth"), ("synth-llama", "nm")}
    assert len(groups[("synth-llama", "depth")]) == 12 and len(groups[("synth-llama", "nm")]) == 4


def test_largest_size_is_held_out_and_predicted_well(study):
    by = {g.method: g for g in study.groups}
    assert by["depth"].heldout_sizes == ["s4"] and by["depth"].fit_sizes == ["s1", "s2", "s3"]
    assert by["nm"].law == "p2-nm" and by["depth"].law == "p2"
    errors = study.heldout_errors()
    assert set(errors) == {"synth-llama/depth/s4", "synth-llama/nm/s4"}
    # 0.1% noise on curves drawn from the law itself: extrapolation must be near exact.
    assert max(errors.values()) < 1.0


def test_fit_units_and_intervals_are_recorded(study):
    g = next(g for g in study.groups if g.method == "depth")
    d = g.to_dict()
    assert d["fit"]["units"]["N0"]["scale"] == 1e6  # nano-sized models are fitted in millions
    lo, hi = d["bootstrap"]["intervals"]["alpha"]
    assert lo <= d["fit"]["constants"]["alpha"] <= hi
    assert d["within_run"]["mape"] < 1.0


def test_optimal_tokens_per_model_and_ratio(study):
    g = next(g for g in study.groups if g.method == "depth")
    assert len(g.optimal) == 12
    targets = {(o["size"], round(o["rho"], 2)): o["tokens_to_margin"]["tokens"] for o in g.optimal}
    # The paper's observations, which the true law encodes: more pruning needs more tokens...
    assert targets[("s2", 0.35)] > targets[("s2", 0.15)]


def test_unknown_holdout_size_is_refused():
    with pytest.raises(UsageError, match="held-out size 'xl' is not in the records"):
        run_study(synthetic_records(), StudyConfig(holdout=("xl",), bootstrap=0))


def test_run_without_checkpoints_is_refused():
    recs = synthetic_records()
    recs[0]["posttrain"]["trajectory"] = []
    with pytest.raises(UsageError, match="no post-training checkpoints"):
        run_study(recs, StudyConfig(bootstrap=0))


def test_non_positive_loss_is_refused():
    recs = synthetic_records()
    recs[0]["posttrain"]["trajectory"][2]["val_loss"] = 0.0
    with pytest.raises(UsageError, match="non-positive"):
        run_study(recs, StudyConfig(bootstrap=0))


def test_too_few_points_is_reported_not_nan():
    recs = [r for r in synthetic_records() if r["method"] == "depth" and r["model"]["key"] in ("s1", "s2")][:2]
    for r in recs:
        r["posttrain"]["trajectory"] = r["posttrain"]["trajectory"][:2]
    (g,) = run_study(recs, StudyConfig(bootstrap=0)).groups
    assert g.fit is None and "at least as many points as parameters" in g.error


def test_unknown_law():
    with pytest.raises(UsageError, match="unknown law 'p3'"):
        run_study(synthetic_records(), StudyConfig(law="p3"))


def test_within_run_failure_does_not_hide_the_extrapolation():
    """One fitted run of 8 checkpoints: the fit works (8 points >= 7 parameters), the
    within-run split does not (6 points), and the held-out curve is still predicted."""
    recs = [r for r in synthetic_records(noise=0.001) if r["method"] == "depth"
            and abs(r["ratio"] - 0.25) < 1e-9 and r["model"]["key"] in ("s1", "s4")]
    (g,) = run_study(recs, StudyConfig(bootstrap=0)).groups
    assert g.fit is not None and g.within_run is None
    assert any(n.startswith("within-run:") for n in g.notes)
    assert set(g.extrapolation) == {"s4"} and len(g.optimal) == 2
