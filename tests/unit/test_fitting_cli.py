"""`prunebench fit --points`: CSV in, one JSON object out, user mistakes as exit 2."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from bench.cli import main
from fitting.synthetic import make_runs

CHIN = dict(a=np.log(400.0), b=np.log(2000.0), e=np.log(1.8), alpha=0.34, beta=0.37)


@pytest.fixture(scope="module")
def points_csv(tmp_path_factory):
    """Chinchilla-style points with a compute column instead of tokens, grouped in runs by size."""
    runs = make_runs("chinchilla", CHIN, sizes=(1e8, 1e9, 1e10), tokens=np.geomspace(1e9, 3e11, 6),
                     noise=0.002, seed=0)
    path = tmp_path_factory.mktemp("pts") / "points.csv"
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["model", "Model Size", "Training FLOP", "loss"])
        for r in runs:
            for d, l in zip(r.tokens, r.loss):
                w.writerow([f"m{r.run_id}", r.inputs["N"], 6 * r.inputs["N"] * d, l])
        w.writerow(["huge", 1e9, 6e18, 9.0])  # one absurd point for --exclude-top-loss
    return path


def run_cli(capsys, *argv):
    code = main(["fit", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_points_json(points_csv, capsys):
    code, out, err = run_cli(
        capsys, "--points", str(points_csv), "--law", "chinchilla",
        "--columns", "Model Size,[Training FLOP]/(6*[Model Size]),loss", "--exclude-top-loss", "1", "--json",
    )
    assert code == 0, err
    d = json.loads(out)  # exactly one JSON object on stdout
    assert set(d["constants"]) == {"A", "B", "E", "alpha", "beta"}
    assert d["constants"]["alpha"] == pytest.approx(0.34, abs=0.02)
    assert d["constants"]["E"] == pytest.approx(1.8, rel=0.02)
    assert d["n_points"] == 18 and d["excluded_points"] == 1 and d["n_starts"] == 4500
    assert d["units"]["N"]["scale"] == 1.0
    assert set(d["metrics"]) >= {"r2", "huber", "mape", "slope_difference"}
    assert d["metrics"]["huber"] == pytest.approx(d["objective"])
    assert d["metrics"]["slope_difference"] is None  # every row is its own run


def test_run_column_and_bootstrap(points_csv, capsys):
    code, out, err = run_cli(
        capsys, "--points", str(points_csv), "--law", "chinchilla", "--columns",
        "Model Size,[Training FLOP]/(6*[Model Size]),loss", "--exclude-top-loss", "1",
        "--run-column", "model", "--bootstrap", "20", "--seed", "3", "--units", "D=1e6", "--search", "coarse", "--json",
    )
    assert code == 0, err
    d = json.loads(out)
    assert d["n_runs"] == 3 and d["units"]["D"]["scale"] == 1e6
    assert d["metrics"]["slope_difference"] is not None
    boot = d["bootstrap"]
    assert boot["n"] == 20 and boot["seed"] == 3 and boot["resampled"] == "runs"
    # The fit and every replicate searched the same 32 starts: no warm start from the optimum.
    assert d["n_starts"] == 32 and boot["search"] == {"starts": 32, "n_polish": 5, "warm_start": False}
    assert set(d["identifiability"]["constants"]) == set(d["constants"])
    lo, hi = boot["intervals"]["beta"]
    assert lo <= d["constants"]["beta"] <= hi


def test_human_output(points_csv, capsys):
    code, out, _ = run_cli(capsys, "--points", str(points_csv), "--law", "chinchilla", "--columns",
                           "Model Size,[Training FLOP]/(6*[Model Size]),loss")
    assert code == 0
    assert "E + A / N**alpha" in out and "alpha =" in out and "R^2" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--results-dir", "/nonexistent/results"], "results directory /nonexistent/results does not exist"),
        (["--law", "chinchila", "--columns", "a,b,c"], "did you mean 'chinchilla'"),
        (["--law", "chinchilla", "--columns", "Model Size,loss"], "needs 3 columns (N,D,L)"),
        (["--law", "chinchilla", "--columns", "Model Size,Tokens,loss"], "no column 'Tokens'"),
        (["--law", "chinchilla", "--columns", "Model Size,__import__('os'),loss"], "only numbers"),
        (["--law", "chinchilla"], "needs --columns"),
        (["--law", "p2", "--columns", "Model Size,Training FLOP,loss"], "needs 5 columns"),
        (["--law", "chinchilla", "--columns", "Model Size,Training FLOP,loss", "--units", "D"], "NAME=SCALE"),
    ],
)
def test_usage_errors_exit_2(points_csv, capsys, argv, message):
    if "--results-dir" not in argv:
        argv = ["--points", str(points_csv), *argv]
    code, out, err = run_cli(capsys, *argv)
    assert code == 2 and out == ""
    assert message in err and err.startswith("prunebench: error:")


def test_missing_file(tmp_path, capsys):
    code, _, err = run_cli(capsys, "--points", str(tmp_path / "nope.csv"), "--law", "chinchilla",
                           "--columns", "a,b,c")
    assert code == 2 and "does not exist" in err


def test_help_documents_column_order(capsys):
    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "chinchilla: N,D,L" in out and "p2: N0,D,rho,L0,L" in out and "p2-n: N0,N,D,L0,L" in out
