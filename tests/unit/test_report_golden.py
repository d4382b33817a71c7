"""report.md rendering against golden files made from a real smoke run.

`golden/inputs.json` holds the records of a `pytest bench --profile smoke` run (volatile
fields normalised), the study fitted on them and a gate verdict; `golden/regenerate.py` makes
it and renders `report.md` and `seed_table.md` from it. This test renders the same inputs and
compares, so the expected text never depends on a live fit or a live run. After an intended
change to the rendering: `python tests/golden/regenerate.py --render-only`, then review the
diff; after a change to results: `python tests/golden/regenerate.py --data-dir DIR`.
"""

from __future__ import annotations

from synthetic_records import cases_of

import json
import sys
from pathlib import Path

import pytest

from reports import fit_tables, numbers, record_tables
from reports.record_tables import seed_tables
from reports.records import Record

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
sys.path.insert(0, str(GOLDEN))

import regenerate  # noqa: E402


@pytest.fixture(scope="module")
def inputs():
    return json.loads((GOLDEN / "inputs.json").read_text())


def test_full_report(inputs):
    assert regenerate.render(inputs)["report.md"] == (GOLDEN / "report.md").read_text()


def test_seed_layout_table(inputs):
    records = [Record.from_json(r) for r in inputs["records"]]
    assert seed_tables(records) == (GOLDEN / "seed_table.md").read_text()


def test_records_read_back_to_the_same_documents(inputs):
    """A record parsed and written again is the same document (the typed record drops nothing)."""
    for doc in inputs["records"]:
        assert Record.from_json(doc).to_json() == doc


def test_inputs_are_the_records_of_a_real_smoke_run(inputs):
    """Every record is what the code writes (schema, provenance, trajectory), not hand-made:
    the 2:4 cases count their nonzero weights, so after < before; the controls are unpruned."""
    from reports.records import SCHEMA

    recs = {r["case_id"]: r for r in inputs["records"]}
    assert set(recs) == {c.id for c in cases_of("smoke")}
    for r in recs.values():
        assert r["schema"] == SCHEMA and r["status"] == "ok" and r["profile"] == "smoke"
        assert r["posttrain"]["trajectory"] and r["config"]["posttrain"]
        assert r["created"] == regenerate.PLACEHOLDER  # normalised, so the file only changes with results
    for r in recs.values():
        p = r["params"]
        if r["method"] == "nm":
            assert p["after"] < p["before"]
        if r["method"] == "control":
            assert p["after"] == p["before"]
    assert inputs["fit"]["schema"] == "prunebench.fit/2"


def test_normalise_replaces_only_volatile_fields():
    rec = {"created": "2026-12-01T08:42:55+00:00", "timings": {"case_s": 1.5}, "ppl": {"x": {"ppl": 9.5, "wall_s": 0.1}},
           "model": {"info": {"path": "/tmp/x", "pretrain_val_loss": 4.1}}}
    out = regenerate.normalise(rec)
    assert out == {"created": "normalised", "timings": "normalised", "ppl": {"x": {"ppl": 9.5, "wall_s": 0}},
                   "model": {"info": {"path": "normalised", "pretrain_val_loss": 4.1}}}
    assert regenerate.normalise(out) == out


def test_the_golden_report_shows_what_the_smoke_fit_cannot_do(inputs):
    """Smoke groups have one fitted size and one run: every fit is reported not identified,
    and the scoped gate fails with that reason, not with a number."""
    report = (GOLDEN / "report.md").read_text()
    for heading in ("## Generalisation tests", "## Candidate forms", "## Conditions a law must meet",
                    "## Extrapolation to held-out models"):
        assert heading in report
    assert all(not g["identifiability"]["identified"] for g in inputs["fit"]["groups"])
    (verdict,) = inputs["verdicts"]
    assert not verdict["passed"] and "not identified (" in verdict["detail"]


def test_number_formats():
    assert numbers.fmt_num(1234.5678) == "1,234.57"
    assert numbers.fmt_num(float("inf")) == "inf"
    assert numbers.fmt_tokens(131072) == "131k" and numbers.fmt_tokens(2.5e9) == "2.5B"
    assert numbers.fmt_pct(0.823458, 4) == "82.3458%"
    # A fit that ran away (the nano 2:4 extrapolation) prints as an exponent, not 36 digits.
    assert numbers.fmt_pct(1.714050742642377e33) == "1.71e+35%"
    assert numbers.fmt_num(-1.452134465882e50) == "-1.45e+50"
    assert numbers.fmt_num(999_999_999.0) == "999,999,999.00"


def test_recovered_fraction_is_in_log_space():
    assert record_tables.recovered_fraction(10.0, 100.0, 10.0) == pytest.approx(1.0)
    assert record_tables.recovered_fraction(10.0, 100.0, 100.0) == pytest.approx(0.0)
    assert record_tables.recovered_fraction(10.0, 100.0, 31.6227766) == pytest.approx(0.5)
    assert record_tables.recovered_fraction(10.0, 9.0, 8.0) is None  # pruning did not hurt


def test_runaway_and_unidentified_figures_are_never_bare_numbers():
    fit = {"groups": [{"key": "f/nm@full-000000", "family": "f", "method": "nm", "law": "p2-nm",
                       "fit_sizes": ["s1"], "identifiability": {"identified": False, "reasons": ["3 curves"],
                                                               "constants": {"E": {"identified": False, "interval": [1e-20, 3e11]}}},
                       "fit": {"constants": {"E": 0.5}, "units": {}, "n_runs": 3, "n_points": 24, "objective": 1e-4},
                       "extrapolation": {"s2": {"extrapolation_error": 1.7e35, "mape": 1.7e35, "gap_final_worst": 4e36,
                                                "r2": -1e70, "huber": 80.0, "slope_difference": 1e30,
                                                "runaway": "run-away prediction (off by a factor 1.7e+33 ...)"}}}]}
    table = fit_tables.extrapolation_table(fit)
    assert "run-away" in table and "e+35" not in table and "e+36" not in table
    consts = fit_tables.fit_table(fit)
    assert "E: not identified (CI [1e-20, 3e+11])" in consts and "E=0.5" not in consts
    fit["groups"][0]["forms"] = [{"law": "p2-nm", "note": "", "status": "ok",
                                  "metrics": {"r2": 0.9, "huber": 1e-4, "mape": 0.5, "slope_difference": 0.1},
                                  "heldout": {"mape": 1.7e35, "gap_final_worst": 4e36, "runaway": "run-away ..."}}]
    forms = fit_tables.forms_table(fit)
    assert "run-away" in forms and "e+35" not in forms
