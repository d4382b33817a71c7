"""The study over records: grouping, fitting, extrapolation, optimal tokens, bad input."""

from __future__ import annotations

from synthetic_records import cases_of

import pytest

from bench.errors import USER_ERRORS, UsageError
import numpy as np

from bench.harness.fit_runs import collect_groups, group_runs
from bench.harness.group_fit import FitConfig
from bench.harness.law_fit import fit_law
from bench.harness.run_config import case_group_names
from reports.recipes import recipe_label
from synthetic_records import (edited, IDENTIFIABLE_P2, LORA_RECIPE, RECIPE, SIZES, SIZES5, TRUE_P2, control_record,
                               synthetic_records)


@pytest.fixture(scope="module")
def study():
    return fit_law(synthetic_records(noise=0.001), FitConfig(bootstrap=20))


FULL = recipe_label(RECIPE)


def test_groups_by_family_method_and_recipe():
    groups = group_runs(synthetic_records())
    # The fourth part is the study seed: None where the study had one.
    assert set(groups) == {("synth-llama", "depth", FULL, None), ("synth-llama", "nm", FULL, None)}
    assert len(groups[("synth-llama", "depth", FULL, None)]) == 12 and len(groups[("synth-llama", "nm", FULL, None)]) == 4


def test_recipe_label_is_short_stable_and_distinguishes_recipes():
    assert FULL.startswith("full-") and len(FULL) == len("full-") + 6
    assert recipe_label(dict(reversed(list(RECIPE.items())))) == FULL  # key order does not matter
    assert recipe_label(LORA_RECIPE).startswith("lora-") and recipe_label(LORA_RECIPE) != FULL
    assert recipe_label(dict(RECIPE, lr=1e-3)) != FULL


def test_mixed_profiles_give_separate_fits_per_recipe():
    """One results directory holding nano and nano-lora records (same family, different
    recipes): two separate depth fits, each on its own 9 runs, never one over both."""
    full = synthetic_records(noise=0.001, nm=False)
    lora = synthetic_records(noise=0.001, nm=False, recipe=LORA_RECIPE, profile="synth-lora",
                             true_p2=dict(TRUE_P2, d_c=-2.0, beta=0.4))
    study = fit_law(full + lora, FitConfig(bootstrap=0, forms=False))
    by = {g.recipe: g for g in study.groups}
    assert set(by) == {FULL, recipe_label(LORA_RECIPE)}
    assert {g.method for g in study.groups} == {"depth"}
    for g in by.values():
        assert g.fit.n_runs == 9 and len({r.run_id.split("-s")[0] for r in g.runs}) == 1
        assert max(study.heldout_errors()[f"{g.key}/s4"] for g in by.values()) < 1.0
    # Each recipe's curves are recovered with its own constants.
    assert by[recipe_label(LORA_RECIPE)].fit.constants["beta"] == pytest.approx(0.4, rel=0.1)
    assert by[FULL].fit.constants["beta"] == pytest.approx(0.6, rel=0.1)
    assert by[FULL].to_dict()["recipe_summary"].startswith("full, lr 0.0005")


def test_control_curve_becomes_the_l0d_input_of_its_own_family_size_and_recipe():
    recs = synthetic_records(controls=True, nm=False)
    recs += synthetic_records(controls=True, nm=False, family="synth-qwen2", profile="synth-q")
    # A LoRA control of the same family and size must not be used for the full recipe's runs.
    other = control_record("s1", SIZES[0], recipe=LORA_RECIPE, profile="synth-lora", improvement=0.2)
    groups = collect_groups(recs + [other])
    g = groups[("synth-llama", "depth", FULL, None)]
    run = next(r for r in g.runs if r.group == "s1")
    ctrl = next(r for r in recs if r.case_id == "synth-s1-control")
    np.testing.assert_allclose(run.inputs["L0D"], [c.val_loss for c in ctrl.posttrain.trajectory])
    assert set(groups) == {("synth-llama", "depth", FULL, None), ("synth-qwen2", "depth", FULL, None)}


def test_case_group_names_match_the_groups_records_form():
    
    names = case_group_names(cases_of("smoke"))
    assert [n.split("@")[0] for n in names] == ["nano-smoke/depth", "nano-smoke/nm", "nano-smoke/width"]
    lora = case_group_names(cases_of("nano-lora"))
    assert all("@lora-" in n for n in lora) and not set(lora) & set(case_group_names(cases_of("nano")))


def test_largest_size_is_held_out_and_predicted_well(study):
    by = {g.method: g for g in study.groups}
    assert by["depth"].heldout_sizes == ["s4"] and by["depth"].fit_sizes == ["s1", "s2", "s3"]
    assert by["nm"].law == "p2-nm" and by["depth"].law == "p2"
    errors = study.heldout_errors()
    assert set(errors) == {f"synth-llama/depth@{FULL}/s4", f"synth-llama/nm@{FULL}/s4"}
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
        fit_law(synthetic_records(), FitConfig(holdout=("xl",), bootstrap=0))


def test_run_without_checkpoints_is_refused():
    recs = synthetic_records()
    recs[0] = edited(recs[0], lambda d: d["posttrain"].update(trajectory=[]))
    with pytest.raises(UsageError, match="no post-training checkpoints"):
        fit_law(recs, FitConfig(bootstrap=0))


def test_non_positive_loss_is_refused():
    recs = synthetic_records()
    recs[0] = edited(recs[0], lambda d: d["posttrain"]["trajectory"][2].update(val_loss=0.0))
    with pytest.raises(USER_ERRORS, match="non-positive"):
        fit_law(recs, FitConfig(bootstrap=0))


def test_too_few_points_is_reported_not_nan():
    recs = [r for r in synthetic_records() if r.method == "depth" and r.model.key in ("s1", "s2")][:2]
    recs = [edited(r, lambda d: d["posttrain"].update(trajectory=d["posttrain"]["trajectory"][:2])) for r in recs]
    (g,) = fit_law(recs, FitConfig(bootstrap=0)).groups
    assert g.fit is None and "at least as many points as parameters" in g.error


def test_unknown_law():
    with pytest.raises(UsageError, match="unknown law 'p3'"):
        fit_law(synthetic_records(), FitConfig(law="p3"))


def test_within_run_failure_does_not_hide_the_extrapolation():
    """One fitted run of 8 checkpoints: the fit works (8 points >= 7 parameters), the
    within-run split does not (6 points), and the held-out curve is still predicted."""
    recs = [r for r in synthetic_records(noise=0.001) if r.method == "depth"
            and abs(r.ratio - 0.25) < 1e-9 and r.model.key in ("s1", "s4")]
    (g,) = fit_law(recs, FitConfig(bootstrap=0)).groups
    assert g.fit is not None and g.within_run is None
    assert any(n.startswith("larger-d:") for n in g.notes)
    assert set(g.extrapolation) == {"s4"} and len(g.optimal) == 2


# -- identifiability, generalisation tests, candidate forms -------------------------------------


@pytest.fixture(scope="module")
def identified():
    """Five sizes (4 fitted) of curves from constants they identify, 0.05% noise."""
    recs = synthetic_records(noise=0.0005, sizes=SIZES5, nm=False, true_p2=IDENTIFIABLE_P2, controls=True)
    (g,) = fit_law(recs, FitConfig(bootstrap=20, check_search=True)).groups
    return g


def test_identified_fit_has_every_constant_identified(identified):
    d = identified.to_dict()
    ident = d["identifiability"]
    assert ident["verdict"] == "identified" and ident["reasons"] == []
    assert set(ident["constants"]) == set(d["fit"]["constants"])
    assert all(c["identified"] and c["spread"] <= 10 for c in ident["constants"].values())
    assert d["bootstrap"]["search"] == {"starts": 128, "n_polish": 2, "warm_start": False}
    # One fit from the full grid (2,187 starts) finds no better optimum than the coarse search.
    assert d["search"]["coarse_reaches_full"] and d["search"]["full_grid_objective"] >= d["fit"]["objective"] * (1 - 1e-6)
    assert len(d["bootstrap"]["replicates"]["alpha"]) == 20


def test_three_sizes_cannot_identify_three_size_parameters(study):
    g = next(g for g in study.groups if g.method == "depth")
    ident = g.identifiability
    assert ident["verdict"] == "not identified"
    assert "3 sizes for 3 size parameters (n_c, alpha, delta)" in ident["reasons"]
    for name in ("N_C", "alpha", "delta"):
        assert not ident["constants"][name]["identified"]
        assert ident["constants"][name]["reason"].startswith("3 sizes for 3 size parameters")


def test_bootstrap_off_means_not_assessed_not_identified():
    recs = synthetic_records(noise=0.0005, sizes=SIZES5, nm=False, true_p2=IDENTIFIABLE_P2)
    (g,) = fit_law(recs, FitConfig(bootstrap=0, forms=False)).groups
    assert not g.identifiability["identified"] and g.identifiability["constants"] == {}
    assert "no bootstrap intervals" in g.identifiability["reasons"][0]


def test_three_generalisation_tests_score_l_and_the_gap(identified):
    t = identified.tests
    assert set(t) == {"larger-d", "larger-n0", "higher-rho"}
    assert set(t["larger-n0"]["targets"]) == {"s5"}
    assert set(t["larger-d"]["targets"]) == {"s1", "s2", "s3", "s4"}
    # higher-rho: fitted on 0.15 and 0.25 at every size, 0.35 predicted at every size.
    assert t["higher-rho"]["fit_on"] == "ratios 0.15, 0.25; predict 0.35"
    assert set(t["higher-rho"]["targets"]) == {"s1", "s2", "s3", "s4", "s5"}
    assert t["higher-rho"]["fit"]["n_runs"] == 10
    for test in t.values():
        for m in test["targets"].values():
            assert m["mape"] < 0.5 and m["runaway"] is None
            # 0.05% noise on L is a few percent of a gap of ~0.2 nats: small, but not MAPE-small.
            assert m["mape"] < m["gap_mean"] < 25 and m["gap_final"] <= m["gap_final_worst"]


def test_candidate_forms_are_all_compared_and_checked(identified):
    forms = {f["law"]: f for f in identified.forms}
    assert list(forms) == ["p2", "p2-n", "p2-no-n0", "p2-nm", "gap-chinchilla", "p2-l0d", "p2-d"]
    assert all(f["status"] == "ok" for f in forms.values()), {k: f["error"] for k, f in forms.items()}
    assert all(set(f["conditions"]) == {"rho->0", "decreasing-in-D", "increasing-in-rho", "gap-decreasing-in-N0"}
               for f in forms.values())
    # The true form meets all four; the forms that lack what the data have show it.
    assert all(c["met"] for c in forms["p2"]["conditions"].values())
    assert forms["p2-nm"]["conditions"]["increasing-in-rho"]["met"] is False
    assert forms["gap-chinchilla"]["conditions"]["rho->0"]["met"] is False
    assert forms["p2"]["metrics"]["huber"] < forms["p2-nm"]["metrics"]["huber"]
    # Information criteria on the same points: the data were drawn with N_C and E, so the form
    # nested at N_C = E = 0 is worse even after its 3 fewer parameters are credited.
    assert (forms["p2"]["criteria"]["k"], forms["p2-d"]["criteria"]["k"]) == (7, 4)
    assert forms["p2"]["criteria"]["n"] == forms["p2-d"]["criteria"]["n"] == forms["p2"]["metrics"]["n_points"]
    assert forms["p2"]["criteria"]["aic"] < forms["p2-d"]["criteria"]["aic"]
    assert forms["p2"]["criteria"]["bic"] - forms["p2"]["criteria"]["aic"] == pytest.approx(7 * (np.log(forms["p2"]["criteria"]["n"]) - 2))


def test_a_form_that_cannot_be_fitted_is_reported_failed_not_dropped():
    """Without control runs there is no L0(D): the p2-l0d form fails with that reason."""
    (g,) = fit_law(synthetic_records(noise=0.001, nm=False), FitConfig(bootstrap=0)).groups
    failed = [f for f in g.forms if f["status"] == "failed"]
    assert [f["law"] for f in failed] == ["p2-l0d"]
    assert "no control run of the same family, size and recipe" in failed[0]["error"]
    assert len(g.forms) == 7


def test_heldout_lines_never_show_a_runaway_or_unverdicted_figure_bare(study):
    import copy

    lines = study.heldout_lines()
    assert len(lines) == 2 and all("fit not identified: 3 sizes for 3 size parameters" in line for line in lines)
    assert all("MAPE" in line and "gap error at the final checkpoint" in line for line in lines)
    s = copy.deepcopy(study)
    m = s.groups[0].extrapolation["s4"]
    m.update(mape=1.7e35, runaway="run-away prediction (off by a factor 1.7e+33 at some checkpoint; limit 10)")
    line = s.heldout_lines()[0]
    assert "run-away prediction" in line and "e+35" not in line


def test_recipe_label_names_the_experiment_not_its_execution():

    base = {"lr": 2e-5, "schedule": "constant", "tokens": 499_122_176, "batch_tokens": 262_144}
    # The paper's 0.5B- and 1B-token runs at a constant lr are one experiment (a prefix), and
    # how a run is spread over processes does not change its curve.
    assert recipe_label(base) == recipe_label(dict(base, tokens=998_244_352))
    assert recipe_label(base) == recipe_label(dict(base, processes=8, engine="fsdp", micro_batch_tokens=8192))
    # Under a decaying schedule the budget shapes the whole curve; lr and LoRA always count.
    cosine = dict(base, schedule="cosine")
    assert recipe_label(cosine) != recipe_label(dict(cosine, tokens=998_244_352))
    assert recipe_label(base) != recipe_label(dict(base, lr=5e-4))
    assert recipe_label(dict(base, lora=True)).startswith("lora-")


def test_the_nested_form_is_identified_where_p2_sits_on_its_boundary():
    """Curves drawn with N_C = E = 0, the boundary every nano p2 fit lands on: p2's N_C and E
    are not identified, p2-d's four constants are, both criteria prefer p2-d, and a law gate
    on p2-d can pass while the same gate on p2 fails with the reason."""
    from bench.studies.gates import parse_law_scope

    boundary = dict(IDENTIFIABLE_P2, n_c=-40.0, e=-40.0)
    recs = synthetic_records(noise=0.0005, sizes=SIZES5, nm=False, true_p2=boundary)
    p2_study = fit_law(recs, FitConfig(bootstrap=20))
    p2d_study = fit_law(recs, FitConfig(law="p2-d", bootstrap=20, forms=False))
    (p2,), (p2d,) = p2_study.groups, p2d_study.groups
    assert not p2.identifiability["identified"]
    assert {"N_C", "E"} <= {k for k, c in p2.identifiability["constants"].items() if not c["identified"]}
    assert p2d.identifiability["identified"], p2d.identifiability
    forms = {f["law"]: f for f in p2.forms}
    assert forms["p2-d"]["criteria"]["bic"] < forms["p2"]["criteria"]["bic"]
    assert forms["p2-d"]["criteria"]["aic"] < forms["p2"]["criteria"]["aic"]
    gate = parse_law_scope("larger-n0=5%")
    assert gate.check(p2d_study).passed
    failed = gate.check(p2_study)
    assert not failed.passed and "not identified" in failed.detail
