"""`prunebench predict`: a model not in the records, from a fit.json, with the fit's uncertainty."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bench.cli import main
from bench.harness.group_fit import FitConfig
from bench.harness.law_fit import fit_law
from fitting import get_law
from synthetic_records import IDENTIFIABLE_P2, SIZES5, synthetic_records


@pytest.fixture(scope="module")
def fit_json(tmp_path_factory):
    recs = synthetic_records(noise=0.0005, sizes=SIZES5, true_p2=IDENTIFIABLE_P2)
    path = tmp_path_factory.mktemp("fit") / "fit.json"
    path.write_text(json.dumps(fit_law(recs, FitConfig(bootstrap=12, forms=False)).to_dict(), default=float))
    return path


def _predict(capsys, *args):
    code = main(["predict", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_predicts_the_true_curve_of_an_unseen_size_with_a_band(fit_json, capsys):
    """A size between the fitted ones and the held-out one, a ratio no run had: the law that
    drew the curves gives the truth to compare with."""
    code, out, err = _predict(capsys, "--fit", str(fit_json), "--group", "depth", "--n0", "4e6", "--rho", "0.3",
                              "--l0", "4.0", "--tokens", "2e4,1e5,1e6", "--json")
    assert code == 0, err
    d = json.loads(out)
    law = get_law("p2")
    x = {"N0": np.full(3, 4.0), "D": np.array([2e4, 1e5, 1e6]) / 1e6, "rho": np.full(3, 0.3), "L0": np.full(3, 4.0)}
    truth = np.exp(law.log_predict(np.array([[IDENTIFIABLE_P2[p] for p in law.params]]), x)[0])
    got = np.array([row["loss"] for row in d["curve"]])
    np.testing.assert_allclose(got, truth, rtol=2e-3)
    assert d["replicates"] == 12 and d["level"] == 0.95 and d["identified"]
    for row in d["curve"]:
        lo, mid, hi = row["band"]
        assert lo <= mid <= hi and hi - lo < 0.05
    t = d["tokens_to_margin"]
    assert t["reachable"] and t["band"][0] <= t["band"][2] and t["margin"] == 0.01


def test_human_output_names_the_budget_and_the_band(fit_json, capsys):
    code, out, _ = _predict(capsys, "--fit", str(fit_json), "--group", "depth", "--n0", "4e6", "--rho", "0.3", "--l0", "4")
    assert code == 0
    assert "tokens to within 1% of the asymptote:" in out and "95% band over 12 bootstrap replicates" in out


def test_extrapolation_beyond_the_stated_factor_is_refused_unless_forced(fit_json, capsys):
    args = ["--fit", str(fit_json), "--group", "depth", "--n0", "7e10", "--rho", "0.25", "--l0", "2.1"]
    code, _, err = _predict(capsys, *args)
    assert code == 2
    assert "above the fitted N0 range [2e+05, 3e+06]" in err and "refused beyond 10x" in err and "--force" in err
    code, out, _ = _predict(capsys, *args, "--force", "--json")
    assert code == 0 and "extrapolated anyway (--force)" in json.loads(out)["notes"][0]
    assert _predict(capsys, *args, "--max-factor", "1e5")[0] == 0


def test_unidentified_group_is_refused_unless_forced(fit_json, capsys):
    code, _, err = _predict(capsys, "--fit", str(fit_json), "--group", "nm", "--n0", "1e6", "--l0", "4")
    assert code == 2 and "is not identified" in err
    assert _predict(capsys, "--fit", str(fit_json), "--group", "nm", "--n0", "1e6", "--l0", "4", "--force")[0] == 0


@pytest.mark.parametrize(("args", "message"), [
    (["--group", "depth", "--n0", "4e6", "--l0", "4"], "needs --rho"),
    (["--n0", "4e6", "--rho", "0.3", "--l0", "4"], "has 2 groups; pass --group"),
    (["--group", "qwen", "--n0", "4e6", "--rho", "0.3", "--l0", "4"], "--group 'qwen' names no fitted group"),
    (["--group", "depth", "--n0", "4e6", "--rho", "1.2", "--l0", "4"], "must be < 1"),
    (["--group", "depth", "--n0", "4e6", "--rho", "0.3", "--l0", "4", "--tokens", "lots"], "--tokens takes"),
])
def test_bad_input_is_one_line_exit_2(fit_json, capsys, args, message):
    code, _, err = _predict(capsys, "--fit", str(fit_json), *args)
    assert code == 2 and message in err and err.count("\n") == 1


def test_fit_json_of_another_schema_or_missing_is_refused(tmp_path, capsys):
    old = tmp_path / "fit.json"
    old.write_text(json.dumps({"schema": "prunebench.fit/1", "groups": []}))
    code, _, err = _predict(capsys, "--fit", str(old), "--n0", "1e6", "--rho", "0.2", "--l0", "4")
    assert code == 2 and "schema 'prunebench.fit/1', this prunebench reads 'prunebench.fit/2'" in err
    code, _, err = _predict(capsys, "--fit", str(tmp_path / "nope.json"), "--n0", "1e6", "--rho", "0.2", "--l0", "4")
    assert code == 2 and "does not exist" in err
    (tmp_path / "bad.json").write_text("{")
    assert _predict(capsys, "--fit", str(tmp_path / "bad.json"), "--n0", "1", "--rho", "0.2", "--l0", "4")[0] == 2
    with pytest.raises(SystemExit) as exc:  # --fit is required: argparse's one-line error, exit 2
        main(["predict", "--n0", "1e6"])
    assert exc.value.code == 2 and "--fit" in capsys.readouterr().err
