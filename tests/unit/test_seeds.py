"""Seeds as a study axis: ids, configs and zoo families per seed, one law fit per seed, the
spread over seeds, and the gates that judge the worst seed or the mean (issue 20)."""

from __future__ import annotations

import pytest

from bench.errors import UsageError
from bench.harness.group_fit import FitConfig
from bench.harness.law_fit import fit_law
from bench.studies import load_study, study_cases
from bench.studies.gates import parse_law_scope
from reports.fit_tables import spread_table
from synthetic_records import IDENTIFIABLE_P2, SIZES5, edited, synthetic_records

STUDY = """
[study]
name = "t"
{seeds}

[[models]]
spec = "nano-smoke-s1"
key = "s1"

[[models]]
spec = "tiny-llama"
key = "b"

[[methods]]
method = "depth"
ratios = [0.25]

[calibration]
source = "wikitext2"
samples = 4
seq_len = 32

[evaluation]
datasets = ["ptb"]
seq_lens = [64]
max_windows = 2

[posttrain]
tokens = 8192
checkpoint_every = 4096
batch_tokens = 4096
micro_batch_tokens = 4096
seq_len = 64
"""


def cases(tmp_path, line: str = "", **kw):
    path = tmp_path / "s.toml"
    path.write_text(STUDY.format(seeds=line))
    return study_cases(load_study(str(path)), **kw)


def test_one_seed_is_the_study_without_seeds(tmp_path):
    plain, one = cases(tmp_path), cases(tmp_path, "seeds = 1")
    assert [c.id for c in one] == [c.id for c in plain] == ["t-s1-depth-0.25", "t-b-depth-0.25"]
    assert [c.fingerprint() for c in one] == [c.fingerprint() for c in plain]
    assert all("seed" not in c.config() and c.seed is None for c in one)
    assert one[0].training_recipe == one[0].recipe


def test_seeds_run_every_case_under_each_seed(tmp_path):
    got = cases(tmp_path, "seeds = [0, 3]")
    assert [c.id for c in got] == ["t-s1-depth-0.25-s0", "t-b-depth-0.25-s0", "t-s1-depth-0.25-s3",
                                   "t-b-depth-0.25-s3"]
    assert [c.config()["seed"] for c in got] == [0, 0, 3, 3]
    assert len({c.fingerprint() for c in got}) == 4
    # The zoo base is drawn again under the seed (its own family and cache key); a hub or
    # config model is the same model under every seed.
    assert [c.model for c in got] == ["nano-smoke-s1", "tiny-llama", "nano-smoke-seed3-s1", "tiny-llama"]
    assert got[0].family == got[2].family  # one fit group key; the seed keeps the fits apart
    # Post-training's own seed (data order, dropout, LoRA init) moves with the study seed.
    assert got[0].training_recipe.seed == 0 and got[2].training_recipe.seed == 3
    assert got[2].recipe.seed == 0  # the declared recipe (and its fit group) is the same


def test_cli_seeds_override_the_study(tmp_path):
    got = cases(tmp_path, "seeds = 5", seeds=(0, 1))
    assert [c.seed for c in got] == [0, 0, 1, 1]


def test_a_seeded_family_is_another_draw_of_the_same_family():
    from bench.training import zoo_families

    base = zoo_families.FAMILIES["nano-smoke"]
    one = zoo_families.seeded("nano-smoke", 1)
    assert one.name == "nano-smoke-seed1" and one.seed == base.seed + 1
    assert one.sizes == base.sizes and one.vocab_size == base.vocab_size
    assert zoo_families.seeded("nano-smoke", 1) is one and zoo_families.seeded("nano-smoke", 0) is base
    assert zoo_families.is_nano("nano-smoke-seed1-s1")


@pytest.mark.parametrize("line,expected", [
    ("seeds = 0", "study.seeds: must be at least 1"),
    ("seeds = [1, 2, 1]", "study.seeds: lists seed 1 more than once"),
    ("seeds = [-1]", "study.seeds: must list non-negative integer seeds"),
    ("seeds = \"3\"", "study.seeds: must be a number of seeds or a list of seeds"),
])
def test_bad_seeds_are_one_line_naming_the_key(tmp_path, line, expected):
    with pytest.raises(UsageError) as exc:
        cases(tmp_path, line)
    assert expected in str(exc.value) and "\n" not in str(exc.value)


def test_seeds_option_zero_is_refused_before_anything_runs():
    from bench.harness.run_config import CommandLine, build_run_config

    with pytest.raises(UsageError) as exc:
        build_run_config(CommandLine(study="smoke", seeds=0))
    assert str(exc.value).startswith("--seeds must be at least 1") and "\n" not in str(exc.value)
    assert build_run_config(CommandLine(study="smoke", seeds=2)).seeds == (0, 1)


# --------------------------------------------------------------------------- one fit per seed

def seeded_records(seeds=(0, 1, 2), noise: float = 0.0005) -> list:
    """The synthetic study drawn under each seed (another noise draw), as a seeded run writes it."""
    out = []
    boundary = dict(IDENTIFIABLE_P2, n_c=-40.0, e=-40.0)  # p2-d's constants, identified
    for seed in seeds:
        for rec in synthetic_records(noise=noise, seed=10 * seed, sizes=SIZES5, nm=False, true_p2=boundary):
            def change(doc, seed=seed):
                doc["case_id"] += f"-s{seed}"
                doc["config"]["seed"] = seed
            out.append(edited(rec, change))
    return out


@pytest.fixture(scope="module")
def seeded_fit():
    return fit_law(seeded_records(), FitConfig(law="p2-d", bootstrap=8, forms=False))


def test_the_law_is_fitted_once_per_seed_and_fit_json_keeps_each(seeded_fit):
    assert seeded_fit.seeds == [0, 1, 2]
    assert [(g.key, g.seed) for g in seeded_fit.groups] == [(seeded_fit.groups[0].key, s) for s in (0, 1, 2)]
    doc = seeded_fit.to_dict()
    assert doc["seeds"] == [0, 1, 2] and [g["seed"] for g in doc["groups"]] == [0, 1, 2]
    (spread,) = doc["spread"]
    assert spread["of"] == 3 and spread["identified"] == [0, 1, 2]
    cell = spread["tests"]["larger-n0"]["s5"]["mape"]
    per = [g["tests"]["larger-n0"]["targets"]["s5"]["mape"] for g in doc["groups"]]
    assert cell["n"] == 3 and cell["min"] == min(per) and cell["max"] == max(per)
    assert cell["mean"] == pytest.approx(sum(per) / 3) and cell["sd"] > 0
    # The report's spread table shows mean ± sd and the range, and who was identified.
    table = spread_table(doc)
    assert "3 of 3 seeds" in table and "±" in table


def test_one_seed_fit_has_no_spread():
    plain = [edited(r, lambda d: (d["config"].pop("seed"), d.update(case_id=d["case_id"][:-3])))
             for r in seeded_records(seeds=(0,))]
    fit = fit_law(plain, FitConfig(law="p2-d", bootstrap=0, forms=False))
    assert fit.seeds == [] and "spread" not in fit.to_dict() and fit.groups[0].seed is None
    assert "One study seed" in spread_table(fit.to_dict())


def test_the_gate_judges_the_worst_seed_by_default_and_the_mean_on_request(seeded_fit):
    per = sorted(g.tests["larger-n0"]["targets"]["s5"]["mape"] for g in seeded_fit.groups)
    mean = sum(per) / 3
    assert per[0] < mean < per[-1]
    limit = (mean + per[-1]) / 2  # above the mean, below the worst seed
    worst = parse_law_scope(f"larger-n0={limit}%").check(seeded_fit)
    assert not worst.passed and "worst seed" in worst.detail and "/s" in worst.detail
    assert parse_law_scope(f"larger-n0:mean={limit}%").check(seeded_fit).passed
    assert parse_law_scope(f"larger-n0={per[-1] * 1.01}%").check(seeded_fit).passed


def test_every_seed_must_be_identified_even_for_the_mean(seeded_fit):
    import dataclasses

    groups = list(seeded_fit.groups)
    groups[1] = dataclasses.replace(groups[1], identifiability={"identified": False, "reasons": ["beta spans 40x"]})
    bad = dataclasses.replace(seeded_fit, groups=groups)
    verdict = parse_law_scope("larger-n0:mean=50%").check(bad)
    assert not verdict.passed and "(seed 1): not identified (beta spans 40x)" in verdict.detail


def test_a_gate_measure_that_does_not_exist_is_one_line():
    with pytest.raises(UsageError) as exc:
        parse_law_scope("larger-n0:depth:median=2%", valid_groups=["nano-llama/depth@full-x"])
    assert "'median'" in str(exc.value) and "mean" in str(exc.value) and "\n" not in str(exc.value)
