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

CONFIGS = Path(__file__).parent / "configs"

# Table 1 of the paper (seeds/003_eb1dd74dcb4eca82.txt): depth ratios per model, in percent.
TABLE1_DEPTH = {
    "llama-3.2-1b": (15, 25, 30), "llama-3.2-3b": (16, 25, 34), "llama-3.1-8b": (16, 24, 33),
    "qwen2.5-0.5b": (15, 21, 27), "qwen2.5-1.5b": (15, 24, 33), "qwen2.5-3b": (17, 25, 32),
}
HUB = {"llama-3.2-1b": "meta-llama/Llama-3.2-1B", "llama-3.2-3b": "meta-llama/Llama-3.2-3B",
       "llama-3.1-8b": "meta-llama/Llama-3.1-8B", "qwen2.5-0.5b": "Qwen/Qwen2.5-0.5B",
       "qwen2.5-1.5b": "Qwen/Qwen2.5-1.5B", "qwen2.5-3b": "Qwen/Qwen2.5-3B"}
# The seed's parameter lines: (before, after, "Ratio = ...%").
SEED_COUNTS = {"llama-3-8b": (8_030_261_248, 6_612_586_496, "82.3458"),
               "llama-3-8b-instruct": (8_030_261_248, 6_612_586_496, "82.3458"),
               "llama-3.1-8b": (8_030_261_248, 6_612_586_496, "82.3458"),
               "llama-3.1-8b-instruct": (8_030_261_248, 6_612_586_496, "82.3458"),
               "tinyllama-v1.1": (1_100_048_384, 945_907_712, "85.9878")}


def paper_ids() -> list[str]:
    ids = []
    for key, depth in TABLE1_DEPTH.items():
        ids.append(f"paper-{key}-control")
        ids += [f"paper-{key}-depth-{r / 100:g}" for r in depth]
        ids += [f"paper-{key}-width-{r:g}" for r in (0.15, 0.25, 0.35)]
        ids.append(f"paper-{key}-2of4-sparsegpt")
    return ids


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


@pytest.fixture
def suite(pytester, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    pytester.makepyfile(test_matrix=(Path(__file__).resolve().parents[1] / "bench" / "test_matrix.py").read_text())
    return pytester


@pytest.mark.parametrize("profile,ids", [("paper", paper_ids()), ("llm-pruner", llm_pruner_ids())])
def test_collect_only_lists_the_expected_ids(suite, tmp_path, profile, ids):
    run = suite.runpytest_subprocess("--profile", profile, "--collect-only", "-q", f"--results-dir={tmp_path / 'r'}")
    assert run.ret == 0, run.stderr.str()
    collected = [line.split("[", 1)[1].rstrip("]") for line in run.stdout.lines if line.startswith("test_matrix.py::")]
    assert collected == ids
