"""Recipes compared (issue 21): the case-by-case token multiplier and the joint form p2-d-joint,
on records whose distillation curves are the CE law's at k x D, so the answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from bench.harness.group_fit import FitConfig
from bench.harness.law_fit import fit_law
from bench.harness.recipe_fit import compare_cases, joint_fits, tokens_to_reach
from fitting import fit, get_law
from fitting.synthetic import make_runs
from reports.recipes import recipe_label
from synthetic_records import IDENTIFIABLE_P2, RECIPE, SIZES5, edited, synthetic_records

K = 2.0
TRUE = dict(IDENTIFIABLE_P2, n_c=-40.0, e=-40.0)  # p2-d's constants (the joint form's, with k)
KD_RECIPE = dict(RECIPE, objective="kd")


def _with_start(rec, start: float):
    def change(doc):
        doc["posttrain"]["initial_val_loss"] = start
    return edited(rec, change)


def study(noise: float) -> list:
    """The study under CE, and under a KD recipe whose tokens are worth K CE tokens."""
    ce = synthetic_records(noise=noise, sizes=SIZES5, nm=False, true_p2=TRUE)
    kd = synthetic_records(noise=noise, seed=7, sizes=SIZES5, nm=False, true_p2=TRUE, recipe=KD_RECIPE,
                           token_factor=K)
    # Both arms of a case start from the same pruned model: one held-out loss before training.
    start = {r.case_id: r.curve()[1][0] * 1.05 for r in ce}
    return [_with_start(r, start[r.case_id]) for r in ce] + [_with_start(r, start[r.case_id]) for r in kd]


@pytest.fixture(scope="module")
def records():
    return study(noise=0.0005)


def test_tokens_to_reach_interpolates_log_linearly():
    assert tokens_to_reach([1e3, 1e4], [3.0, 2.0], 2.5) == pytest.approx(10 ** 3.5)
    assert tokens_to_reach([1e3, 1e4], [3.0, 2.0], 3.5) == 1e3  # already there at the first checkpoint
    assert tokens_to_reach([1e3, 1e4], [3.0, 2.0], 1.0) is None  # never within the budget


def test_each_case_gets_its_token_multiplier_and_the_gap_won_back():
    rows = compare_cases(study(noise=0.0))
    assert len(rows) == 15  # 5 sizes x 3 ratios, each under CE and KD
    for row in rows:
        assert row["recipe"] == recipe_label(KD_RECIPE) and row["ce_recipe"] == recipe_label(RECIPE)
        # KD reaches CE's final loss at 1/K of its tokens (up to the log-linear interpolation).
        # On noisy curves one case's figure is noisy: near the end a curve is flat, and 0.05%
        # of loss noise moves it by 10-20% (the joint form pools the cases).
        assert row["multiplier"] == pytest.approx(K, rel=0.01), row
        assert row["gap_won"] > row["gap_won_ce"] > 0
        assert row["tokens_to_ce_final"] < row["ce_final_tokens"]


def test_the_joint_form_recovers_k_and_predicts_the_heldout_kd_curves(records):
    (entry,) = joint_fits(records, bootstrap=8)
    assert entry["heldout_sizes"] == ["s5"] and entry["fit_sizes"] == ["s1", "s2", "s3", "s4"]
    assert entry["k"] == pytest.approx(K, rel=0.05)
    lo, hi = entry["k_interval"]
    assert lo <= entry["k"] <= hi and hi / lo < 1.5
    assert entry["identifiability"]["identified"], entry["identifiability"]
    held = entry["heldout"]["s5"]
    assert held["law"]["mape"] < 1.0
    # From l5's CE curve alone, read at k x D: the KD curve where k D lies inside the CE run.
    # Each case is read off its own ratio's CE curve: with 0.05% noise the error is of that order.
    assert held["from_ce_curve"]["covered"] > 0 and held["from_ce_curve"]["mape"] < 0.2, held


def test_the_joint_law_is_p2_d_when_one_recipe_is_fitted():
    """At kd = 0 the joint form is p2-d whatever k is; at kd = 1 it is p2-d at k x D."""
    law = get_law("p2-d-joint")
    x = {"N0": np.array([1e6 / 1e6]), "D": np.array([0.05]), "rho": np.array([0.25]), "L0": np.array([4.0]),
         "kd": np.array([0.0])}
    theta = np.array([[TRUE["d_c"], TRUE["beta"], TRUE["gamma"], TRUE["delta"], np.log(3.0)]])
    ref = get_law("p2-d").log_predict(theta[:, :4], {k: v for k, v in x.items() if k != "kd"})
    np.testing.assert_allclose(law.log_predict(theta, x), ref, rtol=1e-12)
    at_3d = get_law("p2-d").log_predict(theta[:, :4], {"N0": x["N0"], "D": 3 * x["D"], "rho": x["rho"], "L0": x["L0"]})
    np.testing.assert_allclose(law.log_predict(theta, dict(x, kd=np.array([1.0]))), at_3d, rtol=1e-12)


def test_law_fit_keeps_the_recipes_apart_and_compares_them(records):
    result = fit_law(records, FitConfig(law="p2-d", bootstrap=0, forms=False))
    labels = sorted(g.recipe for g in result.groups)
    assert labels == sorted([recipe_label(RECIPE), recipe_label(KD_RECIPE)])  # fits never mix recipes
    doc = result.to_dict()
    assert len(doc["recipes"]["cases"]) == 15 and doc["recipes"]["joint"][0]["law"] == "p2-d-joint"
    ce_only = fit_law([r for r in records if "objective" not in r.recipe_config()],
                      FitConfig(law="p2-d", bootstrap=0, forms=False))
    assert "recipes" not in ce_only.to_dict()


def test_a_kd_input_other_than_0_or_1_is_refused():
    from fitting.errors import FitError

    runs = make_runs("p2-d", {k: TRUE[k] for k in ("d_c", "beta", "gamma", "delta")}, sizes=SIZES5[:2],
                     tokens=tuple(np.geomspace(1.6e4, 1.3e5, 4)), units={"N0": 1e6})
    import dataclasses

    bad = [dataclasses.replace(r, inputs={**r.inputs, "kd": 0.5}) for r in runs]
    with pytest.raises(FitError, match="'kd' to be 0"):
        fit(bad, "p2-d-joint", units={"N0": 1e6})


@pytest.fixture(scope="module")
def fit_json(records, tmp_path_factory):
    import json

    from reports.render import strict_json

    path = tmp_path_factory.mktemp("fit") / "fit.json"
    fitted = fit_law(records, FitConfig(law="p2-d", bootstrap=6, forms=False))
    path.write_text(json.dumps(strict_json(fitted.to_dict()), default=float))
    return path


def test_predict_takes_the_recipe_and_prints_the_joint_multiplier(fit_json, capsys):
    import json

    from bench.cli import main

    point = ["--fit", str(fit_json), "--n0", "1e7", "--rho", "0.25", "--l0", "3.5"]
    assert main(["predict", *point]) == 2
    assert "pass --group, one of" in capsys.readouterr().err
    assert main(["predict", *point, "--recipe", "kdd"]) == 2
    assert "(did you mean 'kd'?)" in capsys.readouterr().err
    assert main(["predict", *point, "--recipe", "ce", "--json"]) == 0
    ce = json.loads(capsys.readouterr().out)
    assert main(["predict", *point, "--recipe", "kd", "--json"]) == 0
    kd = json.loads(capsys.readouterr().out)
    assert ce["recipe"] == recipe_label(RECIPE) and kd["recipe"] == recipe_label(KD_RECIPE)
    (joint,) = ce["joint"]
    assert joint["recipe"] == kd["recipe"] and joint["k"] == pytest.approx(K, rel=0.05)
    # The CE law's tokens over k and the KD law's own answer agree (both fitted to the data).
    assert ce["tokens_to_margin"]["tokens"] / joint["k"] == pytest.approx(kd["tokens_to_margin"]["tokens"], rel=0.1)
    # Rows far beyond the fitted tokens carry their factor.
    far = [r for r in kd["curve"] if r["extrapolated"]]
    assert far and all(r["extrapolated"] > 10 for r in far) and kd["curve"][0]["extrapolated"] is None
    assert main(["predict", *point, "--recipe", "kd", "--seed", "1"]) == 2
    assert "--seed 1 is not a study seed" in capsys.readouterr().err
