"""The `paper` and `llm-pruner` studies: their matrices, and exact counts from public configs.

Counts come from `prunebench studies expand --configs tests/configs`: each model built on the
meta device from its public config and pruned by the method's own surgery (no weights).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.cli import main
from bench.studies import load_study, study_cases
from paper_study import HUB, TABLE1_DEPTH, paper_ids
from plugin_helpers import collection_finish, configured, matrix_ids, session_finish, session_of

CONFIGS = Path(__file__).resolve().parents[1] / "configs"

# The seed's parameter lines: (before, after, "Ratio = ...%").
SEED_COUNTS = {"llama-3-8b": (8_030_261_248, 6_612_586_496, "82.3458"),
               "llama-3-8b-instruct": (8_030_261_248, 6_612_586_496, "82.3458"),
               "llama-3.1-8b": (8_030_261_248, 6_612_586_496, "82.3458"),
               "llama-3.1-8b-instruct": (8_030_261_248, 6_612_586_496, "82.3458"),
               "tinyllama-v1.1": (1_100_048_384, 945_907_712, "85.9878")}


def llm_pruner_ids() -> list[str]:
    return [f"llm-pruner-{k}-{m}" for k in SEED_COUNTS for m in ("dense", "l2-0.25", "taylor-0.25")]


@pytest.fixture(scope="module")
def expanded():
    """study name -> id -> row of `prunebench studies expand NAME --configs tests/configs --json`."""
    out = {}
    for name in ("paper", "llm-pruner"):
        with pytest.MonkeyPatch.context() as mp:
            import io
            import sys

            buf = io.StringIO()
            mp.setattr(sys, "stdout", buf)
            assert main(["studies", "expand", name, "--configs", str(CONFIGS), "--json"]) == 0
        out[name] = json.loads(buf.getvalue())
    return out


def test_llm_pruner_counts_equal_the_seed(expanded):
    rows = {r["id"]: r for r in expanded["llm-pruner"]["cases"]}
    assert list(rows) == llm_pruner_ids()
    for key, (before, after, pct) in SEED_COUNTS.items():
        for label in ("l2", "taylor"):
            r = rows[f"llm-pruner-{key}-{label}-0.25"]
            assert (r["params_before"], r["params_after"]) == (before, after), r["id"]
            assert f"{100 * after / before:.4f}" == pct
        dense = rows[f"llm-pruner-{key}-dense"]
        assert dense["params_before"] == dense["params_after"] == before


def test_llm_pruner_study_is_the_seed_protocol():
    study = load_study("llm-pruner")
    cases = study_cases(study)
    assert not study.posttrain and all(c.recipe is None for c in cases)
    for case in cases:
        assert [(e.dataset, e.seq_len, e.max_windows) for e in case.evals] == [
            ("wikitext2", 2048, None), ("ptb", 2048, None), ("wikitext2", 128, None), ("ptb", 128, None)]
        assert case.zeroshot.tasks == ("boolq", "piqa", "hellaswag", "winogrande", "arc_easy", "arc_challenge",
                                       "openbookqa")
        if case.method == "blockwise":
            opts = case.config()["prune"]
            assert case.ratio == 0.25 and opts["layers"] == ((4, 18) if "tinyllama" in case.id else (4, 30))
            assert opts["importance"] == ("l2" if "-l2-" in case.id else "taylor")
            if opts["importance"] == "taylor":
                assert opts["taylor"] == "param_first" and (opts["samples"], opts["calib_seq_len"]) == (10, 64)


def test_paper_depth_ratios_round_to_table_1(expanded):
    rows = {r["id"]: r for r in expanded["paper"]["cases"]}
    assert list(rows) == paper_ids()
    from transformers import AutoConfig

    from bench.studies.params import meta_model

    for key, depth in TABLE1_DEPTH.items():
        config = AutoConfig.for_model(**json.loads((CONFIGS / f"{HUB[key].replace('/', '--')}.json").read_text()))
        model = meta_model(config)
        per_layer = sum(p.numel() for p in model.model.layers[0].parameters())
        for pct in depth:
            r = rows[f"paper-{key}-depth-{pct / 100:g}"]
            removed = r["params_before"] - r["params_after"]
            assert removed % per_layer == 0 and removed > 0  # whole layers only
            assert round(100 * r["achieved_ratio"]) == pct, (r["id"], r["achieved_ratio"])


def test_paper_study_declares_the_papers_setting(expanded):
    study = load_study("paper")
    cases = study_cases(study)
    assert study.holdout == ("llama-3.1-8b", "qwen2.5-3b") and study.law == "p2"
    assert {c.family for c in cases} == {"llama-3", "qwen2.5"}
    budget = {"llama-3.2-1b": 0.5e9, "qwen2.5-0.5b": 0.5e9, "qwen2.5-1.5b": 0.5e9,
              "llama-3.2-3b": 1e9, "qwen2.5-3b": 1e9, "llama-3.1-8b": 1e9}
    for case in cases:
        recipe = case.config()["posttrain"]
        assert (recipe["lr"], recipe["batch_tokens"], recipe["corpus"]) == (2e-5, 2 ** 18, "slimpajama")
        tokens = recipe["tokens"]
        assert tokens <= budget[case.model_key] < tokens + recipe["checkpoint_every"]  # whole intervals, within
        if case.method != "control":
            opts = case.config()["prune"]
            assert (opts["calibration"], opts["samples"]) == ("slimpajama", 1024)
    nm = [c for c in cases if c.method == "nm"]
    assert len(nm) == 6 and all(c.prune.nm_method == "sparsegpt" for c in nm)
    rows = {r["id"]: r for r in expanded["paper"]["cases"]}
    for key in TABLE1_DEPTH:
        for r in (0.15, 0.25, 0.35):
            achieved = rows[f"paper-{key}-width-{r:g}"]["achieved_ratio"]
            assert abs(achieved - r) < 0.01  # hidden widths in multiples of the head count


@pytest.mark.parametrize("profile,ids", [("paper", paper_ids()), ("llm-pruner", llm_pruner_ids())])
def test_collect_only_lists_the_expected_ids(tmp_path, monkeypatch, profile, ids):
    """`pytest bench --profile P --collect-only` offline: the ids, and no model needs resolving
    (`plugin_helpers`: the plugin's hooks in process)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with configured("--profile", profile, f"--results-dir={tmp_path / 'r'}", collectonly=True) as config:
        collected = matrix_ids(config)
        collection_finish(config, session_of(config).cases())
        session_finish(config)
    assert collected == ids
