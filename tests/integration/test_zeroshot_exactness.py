"""Exactness: prunebench's in-memory zero-shot numbers equal lm-eval's own CLI on a saved model.

The CLI runs in a subprocess on a `save_pretrained` copy of a tiny model (with its tokenizer),
with the shipped task configs through ``--include_path``; prunebench evaluates the same model
object it never saved. Every value, stderr and sample count must be equal, not close: the two
paths differ only in how the model reaches lm-eval.
"""

from __future__ import annotations

import pytest

pytest.importorskip("lm_eval")

from bench.evaluation import zeroshot  # noqa: E402
from bench.sources.tiny import byte_tokenizer, tiny_model  # noqa: E402
from bench.tasks import LOCAL_TASKS  # noqa: E402
from process_helpers import BATCH, LIMIT, MAX_LENGTH, lm_eval_cli  # noqa: E402


def test_in_memory_numbers_equal_lm_eval_cli(data_dir, tmp_path, child_env):
    model, tokenizer = tiny_model("llama", seed=3), byte_tokenizer()
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    theirs = lm_eval_cli(tmp_path / "model", data_dir, tmp_path / "out", child_env)

    spec = zeroshot.ZeroShotSpec(LOCAL_TASKS, limit=LIMIT, max_length=MAX_LENGTH, batch_size=BATCH)
    assert spec.bootstrap_iters == 100_000  # lm-eval's CLI always bootstraps this many
    mine = zeroshot.evaluate(model, tokenizer, zeroshot.prepare(spec, data_dir))

    assert len(mine["results"]) == 5
    for row in mine["results"]:
        cli = theirs["results"][row["task"]]
        assert row["value"] == cli[f"{row['metric']},none"], row
        cli_err = cli[f"{row['metric']}_stderr,none"]
        assert row["stderr"] == (None if cli_err == "N/A" else cli_err), row
        assert row["samples"] == theirs["n-samples"][row["task"]]["effective"] == LIMIT
        assert row["samples_total"] == theirs["n-samples"][row["task"]]["original"]
        assert row["task_version"] == theirs["versions"][row["task"]]
    # The random model is far from the data: the figures are finite and not degenerate.
    word_ppl = zeroshot.value_of(mine, "wikitext", "word_perplexity")["value"]
    assert 1 < word_ppl < float("inf")
