"""Zero-shot evaluation: the shipped offline tasks, the in-memory lm-eval run, cases and runner."""

from __future__ import annotations

from bench.studies import load_study, study_cases

from synthetic_records import cases_of

import re

import pytest

pytest.importorskip("lm_eval")

from bench.evaluation import zeroshot  # noqa: E402
from bench.studies.cases import Case, EvalSpec  # noqa: E402
from case_helpers import make_case  # noqa: E402
from bench.errors import UsageError  # noqa: E402
from bench.sources.tiny import byte_tokenizer, tiny_model  # noqa: E402
from bench.env import RunEnv  # noqa: E402
from bench.harness.runner import CaseRunner  # noqa: E402
from bench.tasks import LOCAL_TASKS, TASKS_DIR, local  # noqa: E402


@pytest.fixture(scope="module")
def raw_test(data_dir) -> str:
    return local._raw_test_text(data_dir)


# ----------------------------------------------------------------------------- offline tasks


def test_wikitext_pages_partition_the_file_into_62_articles(raw_test):
    pages = local.split_pages(raw_test)
    # The hub's wikitext_document_level has 62 test documents; every one starts at a title.
    assert len(pages) == 62
    assert all(local._is_title(p.split("\n", 1)[0]) for p in pages)
    assert pages[0].startswith(" = Robert Boulter = \n")
    # Nothing is lost or reordered: only the blank line before the first title is dropped.
    lines = raw_test.split("\n")
    assert lines[0] == " " and "\n".join(pages) == "\n".join(lines[1:])
    # Section headings (" = = Career = = ") stay inside their article.
    assert any(" = = Career = = " in p for p in pages[:1])


def test_lastword_items_are_deterministic_and_well_formed(raw_test):
    items = local.lastword_items(raw_test)
    assert items == local.lastword_items(raw_test)
    assert len(items) == 1306
    for item in items:
        assert re.fullmatch(r" [A-Za-z]+", item["target"])
        assert len(item["context"].split()) >= local.MIN_CONTEXT_WORDS
        assert not item["context"].endswith(" ")
    # A lower context threshold only adds passages.
    assert len(local.lastword_items(raw_test, 0)) > len(items)
    assert items[0]["target"] == " Hall" and items[0]["context"].endswith("Sophie Stanton and Dominic")


def test_shipped_yaml_defines_exactly_the_local_tasks():
    from lm_eval.tasks._yaml_loader import load_yaml

    names = sorted(load_yaml(p, resolve_func=False)["task"] for p in TASKS_DIR.glob("*.yaml"))
    assert names == sorted(LOCAL_TASKS)


def test_missing_data_dir_is_one_line(isolated_env):
    with pytest.raises(UsageError, match="PRUNEBENCH_DATA_DIR"):
        zeroshot.prepare(zeroshot.ZeroShotSpec(("wikitext",)))


# ----------------------------------------------------------------------------- spec


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(tasks=()), "no zero-shot tasks"),
    (dict(tasks=("wikitext", "wikitext")), "repeat"),
    (dict(tasks=("wikitext",), limit=0), "at least 1"),
    (dict(tasks=("wikitext",), task_limits=(("piqa", 2),)), "not among the tasks"),
    (dict(tasks=("wikitext",), batch_size=0), "--batch-size"),
])
def test_spec_validates_itself(kwargs, message):
    with pytest.raises(UsageError, match=message):
        zeroshot.ZeroShotSpec(**kwargs)


def test_unknown_task_did_you_mean(data_dir):
    with pytest.raises(UsageError, match=r"unknown zero-shot task 'wikitext_lastwrd' \(did you mean 'wikitext_lastword'\?\)"):
        zeroshot.prepare(zeroshot.ZeroShotSpec(("wikitext_lastwrd",)), data_dir)


def test_primary_metrics_follow_llm_pruner():
    assert [zeroshot.primary_metric(t) for t in ("boolq", "piqa", "winogrande", "arc_easy")] == ["acc"] * 4
    assert [zeroshot.primary_metric(t) for t in ("hellaswag", "arc_challenge", "openbookqa")] == ["acc_norm"] * 3
    assert zeroshot.primary_metric("wikitext") == "word_perplexity"


# ----------------------------------------------------------------------------- in-memory run


@pytest.fixture(scope="module")
def tiny_run(data_dir):
    model = tiny_model("llama").train()  # evaluate must not leave it in a different mode
    spec = zeroshot.ZeroShotSpec(LOCAL_TASKS, limit=2, max_length=128, bootstrap_iters=100)
    out = zeroshot.evaluate(model, byte_tokenizer(), zeroshot.prepare(spec, data_dir))
    return model, out


def test_results_carry_what_the_record_needs(tiny_run):
    model, out = tiny_run
    assert model.training
    rows = {(r["task"], r["metric"]): r for r in out["results"]}
    assert set(rows) == {("wikitext", "word_perplexity"), ("wikitext", "byte_perplexity"), ("wikitext", "bits_per_byte"),
                         ("wikitext_lastword", "perplexity"), ("wikitext_lastword", "acc")}
    for row in rows.values():
        assert row["samples"] == 2 and row["limit"] == 2 and row["lm_eval_version"] == zeroshot.lm_eval_version()
        assert isinstance(row["value"], float) and row["value"] == row["value"]
    assert rows[("wikitext", "word_perplexity")]["samples_total"] == 62
    assert rows[("wikitext", "word_perplexity")]["task_version"] == 2.0
    assert rows[("wikitext", "word_perplexity")]["stderr"] is None  # lm-eval has none for it
    assert rows[("wikitext_lastword", "perplexity")]["stderr"] > 0  # bootstrapped
    assert 0.0 <= rows[("wikitext_lastword", "acc")]["value"] <= 1.0
    # bits per byte and byte perplexity are the same number in two units.
    assert rows[("wikitext", "byte_perplexity")]["value"] == pytest.approx(2 ** rows[("wikitext", "bits_per_byte")]["value"])
    assert out["protocol"]["max_length"] == 128 and out["protocol"]["num_fewshot"] == 0


def test_per_task_limits_select_the_same_documents_as_limit(tiny_run, data_dir):
    _, out = tiny_run
    spec = zeroshot.ZeroShotSpec(LOCAL_TASKS, task_limits=(("wikitext", 2), ("wikitext_lastword", 2)),
                                 max_length=128, bootstrap_iters=100)
    again = zeroshot.evaluate(tiny_model("llama"), byte_tokenizer(), zeroshot.prepare(spec, data_dir))
    assert [(r["task"], r["metric"], r["value"]) for r in again["results"]] == \
        [(r["task"], r["metric"], r["value"]) for r in out["results"]]


def test_no_tokenizer_is_refused(data_dir, tmp_path):
    tiny_model("llama").save_pretrained(tmp_path)
    with pytest.raises(UsageError, match="has no tokenizer"):
        zeroshot.require_tokenizer_files(str(tmp_path))
    tasks = zeroshot.prepare(zeroshot.ZeroShotSpec(("wikitext",), limit=1, max_length=64), data_dir)
    with pytest.raises(UsageError, match="has no tokenizer"):
        zeroshot.evaluate(tiny_model("llama"), None, tasks)


# ----------------------------------------------------------------------------- cases, profiles, runner


def test_zeroshot_enters_the_fingerprint_only_when_set():
    base = Case(study="p", model="tiny-llama", model_key="llama", method="dense", evals=(EvalSpec("ptb", 64, 2),))
    assert "zeroshot" not in base.config()
    with_zs = Case(**{**base.__dict__, "zeroshot": zeroshot.ZeroShotSpec(("wikitext",), limit=1)})
    other = Case(**{**base.__dict__, "zeroshot": zeroshot.ZeroShotSpec(("wikitext",), limit=2)})
    assert len({base.fingerprint(), with_zs.fingerprint(), other.fingerprint()}) == 3
    assert with_zs.config()["zeroshot"]["tasks"] == ("wikitext",)


def test_smol_profile_has_one_zeroshot_row_per_method():
    cases = cases_of("smol")
    zs = [c for c in cases if c.zeroshot is not None]
    assert [c.id for c in zs] == [c.id for c in cases if c.id.endswith("-zeroshot")]
    assert {c.label for c in zs} == {c.label for c in cases}  # dense and every method
    assert all(not c.evals and c.zeroshot.tasks == LOCAL_TASKS for c in zs)
    # The perplexity cases are unchanged: 8 methods x 4 measurements, no zero-shot on them.
    assert len([c for c in cases if c.zeroshot is None]) == 32
    full = study_cases(load_study("smol"), full_eval=True)
    assert all(c.zeroshot.task_limits == () and c.zeroshot.limit is None for c in full if c.zeroshot)


def test_post_trained_case_measures_before_and_after(data_dir):
    recipe = dict(tokens=1024, checkpoint_every=512, batch_tokens=256, micro_batch_tokens=256, seq_len=32,
                  lr=3e-3, eval_windows=2, max_documents=4)
    case = make_case("unit", "tiny-llama", "llama", "control", label="control", evals=(EvalSpec("wikitext2", 32, 2),),
                     recipe=recipe, family="tiny-llama",
                     zeroshot=zeroshot.ZeroShotSpec(("wikitext_lastword",), limit=3, max_length=64, bootstrap_iters=10))
    fields = CaseRunner(RunEnv.make(data_dir=data_dir)).run(case).to_json()
    before = zeroshot.value_of(fields["zeroshot_pruned"], "wikitext_lastword", "perplexity")["value"]
    after = zeroshot.value_of(fields["zeroshot"], "wikitext_lastword", "perplexity")["value"]
    assert before != after  # post-training changed the model that was evaluated
    assert fields["config"]["zeroshot"]["limit"] == 3


def test_one_wrapper_and_one_harness_call_for_all_tasks(data_dir, monkeypatch):
    """All tasks of an evaluation share one HFLM around the in-memory model (no reload)."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM

    wrapped, calls = [], []
    real_init, real_eval = HFLM.__init__, lm_eval.simple_evaluate

    def counting_init(self, *args, **kwargs):  # a spy: the real constructor runs
        wrapped.append(kwargs["pretrained"])
        real_init(self, *args, **kwargs)

    def counting_eval(*args, **kwargs):
        calls.append(tuple(kwargs["tasks"]))
        return real_eval(*args, **kwargs)

    monkeypatch.setattr(HFLM, "__init__", counting_init)
    monkeypatch.setattr(lm_eval, "simple_evaluate", counting_eval)
    model = tiny_model("llama")
    spec = zeroshot.ZeroShotSpec(LOCAL_TASKS, limit=1, max_length=64, bootstrap_iters=10)
    zeroshot.evaluate(model, byte_tokenizer(), zeroshot.prepare(spec, data_dir))
    assert len(wrapped) == 1 and wrapped[0] is model  # the object itself, not a reloaded copy
    assert calls == [LOCAL_TASKS]
