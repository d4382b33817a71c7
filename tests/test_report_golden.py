"""report.md rendering against golden files.

Inputs are fixed JSON (records and a fit result) so the expected text never depends on a
live fit. Set PRUNEBENCH_UPDATE_GOLDEN=1 to rewrite the golden files after an intended change,
then review the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from reports import markdown

GOLDEN = Path(__file__).parent / "golden"


def _check(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("PRUNEBENCH_UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert path.is_file(), f"missing golden file {path}; run with PRUNEBENCH_UPDATE_GOLDEN=1"
    assert text == path.read_text()


@pytest.fixture(scope="module")
def inputs():
    return json.loads((GOLDEN / "inputs.json").read_text())


def test_seed_layout_table(inputs):
    _check("seed_table.md", markdown.seed_tables(inputs["smol_records"]))


def test_full_report(inputs):
    verdicts = [{"name": "max-extrapolation-error", "passed": True, "detail": "worst synth-llama/depth/s4 0.12% vs limit 5%"}]
    text = markdown.render_report(inputs["smol_records"] + inputs["post_records"], inputs["fit"], verdicts,
                                  ["loss_synth-llama_depth.png"])
    _check("report.md", text)


def test_number_formats():
    assert markdown.fmt_num(1234.5678) == "1,234.57"
    assert markdown.fmt_num(float("inf")) == "inf"
    assert markdown.fmt_tokens(131072) == "131k" and markdown.fmt_tokens(2.5e9) == "2.5B"
    assert markdown.fmt_pct(0.823458, 4) == "82.3458%"
    # A fit that ran away (the nano 2:4 extrapolation) prints as an exponent, not 36 digits.
    assert markdown.fmt_pct(1.714050742642377e33) == "1.71e+35%"
    assert markdown.fmt_num(-1.452134465882e50) == "-1.45e+50"
    assert markdown.fmt_num(999_999_999.0) == "999,999,999.00"


def test_recovered_fraction_is_in_log_space():
    assert markdown.recovered_fraction(10.0, 100.0, 10.0) == pytest.approx(1.0)
    assert markdown.recovered_fraction(10.0, 100.0, 100.0) == pytest.approx(0.0)
    assert markdown.recovered_fraction(10.0, 100.0, 31.6227766) == pytest.approx(0.5)
    assert markdown.recovered_fraction(10.0, 9.0, 8.0) is None  # pruning did not hurt
