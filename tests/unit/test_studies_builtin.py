"""The built-in profiles are study files that keep their cases exactly.

`studies_builtin_before.json` holds the ids, fingerprints and configs of every case of every
built-in profile, dumped from the Python profiles before they became study files; the TOML
studies must make the same cases, in the same order, with and without --full-eval.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.studies import profiles
from bench.studies import builtin_names, load_study, study_cases

BEFORE = json.loads((Path(__file__).resolve().parents[1] / "studies_builtin_before.json").read_text())
KEYS = sorted(k for k in BEFORE if not k.startswith("_"))


@pytest.mark.parametrize("key", KEYS)
def test_builtin_study_keeps_ids_and_fingerprints(key):
    name, _, full = key.partition("+")
    cases = study_cases(load_study(name), full_eval=bool(full))
    got = [{"id": c.id, "fingerprint": c.fingerprint(), "config": json.loads(json.dumps(c.config(), default=str))}
           for c in cases]
    assert [g["id"] for g in got] == [r["id"] for r in BEFORE[key]]
    for g, r in zip(got, BEFORE[key]):
        assert g == r, g["id"]


def test_every_former_profile_is_a_shipped_study():
    assert {k.partition("+")[0] for k in KEYS} <= set(builtin_names())
    assert set(builtin_names()) <= set(profiles.profile_names())


@pytest.mark.parametrize("name", builtin_names())
def test_every_builtin_study_validates(name):
    study = load_study(name)
    cases = study_cases(study)
    assert cases and all(c.study == study.name == name for c in cases)
    assert len({c.id for c in cases}) == len(cases)
    for case in cases:
        hash(case)  # options stay hashable (arrays become tuples)


def test_full_eval_lifts_caps_in_every_study():
    for name in builtin_names():
        for case in study_cases(load_study(name), full_eval=True):
            assert all(e.max_windows is None for e in case.evals)
            assert case.zeroshot is None or (case.zeroshot.limit is None and case.zeroshot.task_limits == ())


def test_profile_help_lists_the_study_descriptions():
    text = profiles.profile_help()
    assert "smol: SmolLM2-135M-Instruct" in text and "tiny: tiny random Llama" in text


def test_nano_ratios_come_from_the_study():
    assert load_study("nano").method("depth").ratios == (0.15, 0.25, 0.35)
