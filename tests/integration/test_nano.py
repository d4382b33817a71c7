"""The nano and smoke profiles, the post-training branch of the runner, records and --resume."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest

from bench.env import RunEnv
from bench.errors import UsageError
from bench.harness.run_config import CommandLine
from bench.harness.session import BenchSession
from bench.studies import load_study, profiles, study_cases
from bench.studies.cases import Case
from bench.training import zoo_families
from bench.training.recipe import Diverged
from synthetic_records import cases_of

# Registered by the `unit` fixture, for one test at a time.
SETUP = '''
from bench.training import zoo_families

FAMILY = zoo_families.register_family(zoo_families.Family(
    "nano-unit", "llama", (zoo_families.BaseSize("u1", 16, 2, 1, 1, 32, pretrain_tokens=2048, lr=1e-2),),
    vocab_size=300, seq_len=32, batch_tokens=512, tokenizer_docs=4, pretrain_docs=8, eval_windows=4))
'''
RECIPE = dict(tokens=1024, checkpoint_every=256, batch_tokens=256, micro_batch_tokens=128, seq_len=32,
              lr=3e-3, eval_windows=4, max_documents=4)
# Three cases on the family's one size: the control, depth and 2:4 SparseGPT.
STUDY = """
[study]
name = "unit"
description = "one tiny zoo model, three cases (tests)"

[[models]]
zoo = "nano-unit"

[[methods]]
method = "control"

[[methods]]
method = "depth"
ratios = [0.25]

[[methods]]
method = "nm"
label = "2of4-sparsegpt"
ratios = [0.5]
options = {{ n = 2, m = 4, nm_method = "sparsegpt" }}

[calibration]
source = "wikitext2"
samples = 4
seq_len = 32
seed = 0

[posttrain]
{recipe}

[evaluation]
datasets = ["wikitext2", "ptb"]
seq_lens = [32]
max_windows = 4
"""
_STUDIES = Path(tempfile.mkdtemp(prefix="prunebench-unit-"))


def study_file(recipe: dict | None = None, directory: Path = _STUDIES) -> Path:
    """The unit study with a post-training recipe (default `RECIPE`), as a file."""
    recipe = RECIPE if recipe is None else recipe
    lines = "\n".join(f"{k} = {json.dumps(v)}" for k, v in recipe.items())
    path = directory / f"unit-{abs(hash(lines))}.toml"
    path.write_text(STUDY.format(recipe=lines))
    return path


@pytest.fixture(autouse=True)
def unit():
    """SETUP's family, registered for one test only."""
    with zoo_families.FAMILIES.scratch():
        exec(compile(SETUP, "nano-unit-setup", "exec"), {})  # noqa: S102 - our own test setup
        yield


def unit_cases(recipe: dict | None = None) -> list[Case]:
    """The unit study's cases, optionally with another post-training recipe."""
    return study_cases(load_study(study_file(recipe)))


@pytest.fixture
def session_factory(data_dir, tmp_path, zoo_cache):
    """Sessions on this test's results directory; the zoo base is built once per test session."""

    def make(resume: bool = False) -> BenchSession:
        env = RunEnv.make(data_dir=data_dir, results_dir=tmp_path / "results", cache_dir=zoo_cache)
        return BenchSession(CommandLine(str(study_file()), resume=resume), env)

    return make


def read(results: Path, case_id: str) -> dict:
    return json.loads((results / "records" / f"{case_id}.json").read_text())


# ----------------------------------------------------------------------------- profiles


def test_nano_is_the_default_profile():
    assert profiles.DEFAULT_PROFILE == "nano"


def test_nano_profile_covers_every_size_and_method():
    cases = cases_of("nano")
    fam = zoo_families.FAMILIES["nano-llama"]
    assert len(cases) == len(fam.sizes) * 8
    ids = {c.id for c in cases}
    for size in fam.sizes:
        k = size.key
        assert {f"nano-{k}-control", f"nano-{k}-2of4-sparsegpt"} <= ids
        ratios = load_study("nano").method("depth").ratios
        assert {f"nano-{k}-{m}-{r:g}" for m in ("depth", "width") for r in ratios} <= ids
    for case in cases:
        recipe = case.recipe  # every recipe is valid: built when the study was read
        assert recipe.tokens // recipe.checkpoint_every >= 5  # enough checkpoints to fit and validate
        assert case.family == "nano-llama" and zoo_families.is_nano(case.model)
        assert {e.dataset for e in case.evals} == {"wikitext2", "ptb"}
    assert len({c.recipe for c in cases}) == 1  # one recipe: the same D axis for every curve


def test_smoke_profile_is_two_tiny_sizes():
    cases = cases_of("smoke")
    assert {c.model_key for c in cases} == {"s1", "s2"}
    assert {c.method for c in cases} == {"control", "depth", "width", "nm"}
    assert all(c.recipe is not None for c in cases)
    assert "smoke-s1-depth-0.25" in {c.id for c in cases}


def test_lora_and_qwen2_variants():
    lora = cases_of("nano-lora")
    assert lora and all(c.recipe.lora for c in lora)
    assert "nm" not in {c.method for c in lora}  # LoRA cannot keep a 2:4 mask
    qwen = cases_of("nano-qwen2")
    assert {c.family for c in qwen} == {"nano-qwen2"} and "nano-qwen2-l1-depth-0.25" in {c.id for c in qwen}
    assert zoo_families.FAMILIES["nano-qwen2"].model_config(zoo_families.FAMILIES["nano-qwen2"].sizes[0]).model_type == "qwen2"


def test_full_eval_lifts_window_caps():
    capped = cases_of("nano")[0].evals
    full = study_cases(load_study("nano"), full_eval=True)[0].evals
    assert all(e.max_windows for e in capped) and all(e.max_windows is None for e in full)


# ----------------------------------------------------------------------------- the runner's post-training branch


def test_records_carry_what_the_fit_needs(session_factory):
    session = session_factory()
    recs = {c.id: session.run_case(c).to_json() for c in unit_cases()}
    control, depth, nm = recs["unit-u1-control"], recs["unit-u1-depth-0.25"], recs["unit-u1-2of4-sparsegpt"]
    l0 = control["posttrain"]["L0"]
    for rec in recs.values():
        pt = rec["posttrain"]
        assert rec["status"] == "ok" and pt["diverged"] is False
        assert pt["L0"] == l0  # the unpruned base's held-out loss, same windows for every case
        assert [c["tokens"] for c in pt["trajectory"]] == [256, 512, 768, 1024]
        assert all(set(c) >= {"tokens", "train_loss", "val_loss", "wall_s"} for c in pt["trajectory"])
        assert pt["N0"] == rec["params"]["before"] and pt["N"] == rec["params"]["after"]
        assert pt["rho"] == pytest.approx(rec["params"]["achieved_ratio"])
        assert pt["recipe"]["tokens"] == 1024 and pt["eval_tokens"] == 4 * 32
        assert set(rec["ppl"]) == set(rec["ppl_pruned"]) == set(rec["ppl_dense"]) == {"wikitext2:32", "ptb:32"}
        assert rec["model"]["family"] == "nano-unit" and rec["model"]["key"] == "u1"
        assert rec["model"]["non_embedding_params"] == rec["params"]["non_embedding_before"]
    assert control["posttrain"]["initial_val_loss"] == pytest.approx(l0)
    assert control["ppl_pruned"] == control["ppl_dense"] and control["posttrain"]["rho"] == 0
    assert control["posttrain"]["control_improvement"] == pytest.approx(
        (l0 - control["posttrain"]["final_val_loss"]) / l0)
    assert "control_improvement" not in depth["posttrain"]
    assert depth["posttrain"]["initial_val_loss"] > l0  # pruning hurt
    assert depth["posttrain"]["final_val_loss"] < depth["posttrain"]["initial_val_loss"]  # and it recovers
    assert nm["params"]["after"] < nm["params"]["before"]  # zeros count as removed
    assert nm["posttrain"]["masks_kept"] and nm["posttrain"]["mask_violations"] == 0
    assert nm["params"]["non_embedding_after"] < nm["params"]["non_embedding_before"]


def test_perplexity_at_checkpoints_on_request(session_factory):
    case = unit_cases(recipe=dict(RECIPE, ppl_at_checkpoints=True))[0]
    rec = session_factory().run_case(case).to_json()
    traj = rec["posttrain"]["trajectory"]
    assert all(set(c["extra"]) == {"wikitext2:32", "ptb:32"} for c in traj)
    assert traj[-1]["extra"]["ptb:32"]["ppl"] == pytest.approx(rec["ppl"]["ptb:32"]["ppl"])


def test_bad_recipe_fails_when_the_study_is_read(tmp_path):
    # A budget below one checkpoint interval: refused with the study, before any case exists.
    with pytest.raises(UsageError, match="posttrain: post-training budget of 128 tokens is smaller than one "
                                         "checkpoint interval"):
        unit_cases(recipe=dict(RECIPE, tokens=128))


def test_divergence_keeps_the_record_and_fails_the_case(session_factory, tmp_path):
    case = unit_cases(recipe=dict(RECIPE, lr=1e30, grad_clip=0.0))[1]
    session = session_factory()
    with pytest.raises(Diverged, match="diverged at step .*status 'diverged'.*lower the learning rate"):
        session.run_case(case)
    rec = read(tmp_path / "results", case.id)
    assert rec["status"] == "diverged" and rec["posttrain"]["diverged"] is True
    assert rec["posttrain"]["divergence"]["tokens"] < 1024
    assert session_factory(resume=True).stored(case) is None  # a diverged record is never resumed


# ----------------------------------------------------------------------------- resume


def test_resume_reruns_only_what_a_killed_run_lost(session_factory, monkeypatch):
    cases = unit_cases()
    first = session_factory()
    for case in cases[:2]:  # "killed" before the third case finished
        first.run_case(case)
    created = {c.id: first.outcomes[i].record.created for i, c in enumerate(cases[:2])}

    second = session_factory(resume=True)
    ran = []
    real = second.runner.run
    monkeypatch.setattr(second.runner, "run", lambda case, **kw: ran.append(case.id) or real(case, **kw))
    for case in cases:
        second.run_case(case)
    assert ran == [cases[2].id]
    assert [o.resumed for o in second.outcomes] == [True, True, False]
    assert all(second.outcomes[i].record.created == created[c.id] for i, c in enumerate(cases[:2]))

    third = session_factory(resume=True)
    monkeypatch.setattr(third.runner, "run", lambda case, **kw: pytest.fail(f"{case.id} recomputed"))
    for case in cases:
        third.run_case(case)
    assert all(o.resumed for o in third.outcomes)


def test_resume_recomputes_a_case_whose_recipe_changed(session_factory):
    case = unit_cases()[0]
    session_factory().run_case(case)
    changed = unit_cases(recipe=dict(RECIPE, lr=1e-3))[0]
    assert changed.id == case.id and changed.fingerprint() != case.fingerprint()
    assert session_factory(resume=True).stored(changed) is None
