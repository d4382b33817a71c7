"""Exactness: prunebench's in-memory zero-shot numbers equal lm-eval's own CLI on a saved model.

The CLI runs in a subprocess on a `save_pretrained` copy of a tiny model (with its tokenizer),
with the shipped task configs through ``--include_path``; prunebench evaluates the same model
object it never saved. Every value, stderr and sample count must be equal, not close: the two
paths differ only in how the model reaches lm-eval.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("lm_eval")

from bench.evaluation import zeroshot  # noqa: E402
from bench.sources.tiny import byte_tokenizer, tiny_model  # noqa: E402
from bench.tasks import LOCAL_TASKS, TASKS_DIR  # noqa: E402

LIMIT, MAX_LENGTH, BATCH = 3, 256, 8


def lm_eval_cli(model_dir, data_dir, out_dir, tasks=LOCAL_TASKS, limit=LIMIT) -> dict:
    """lm-eval's CLI on a saved model with the shipped tasks; its results JSON."""
    cmd = [sys.executable, "-m", "lm_eval", "run", "--model", "hf",
           "--model_args", f"pretrained={model_dir},max_length={MAX_LENGTH},dtype=float32",
           "--device", "cpu", "--include_path", str(TASKS_DIR), "--tasks", ",".join(tasks),
           "--metadata", f"data_dir={data_dir}", "--limit", str(limit), "--batch_size", str(BATCH),
           "--output_path", str(out_dir)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (path,) = out_dir.rglob("results_*.json")
    return json.loads(path.read_text())


def test_in_memory_numbers_equal_lm_eval_cli(data_dir, tmp_path):
    model, tokenizer = tiny_model("llama", seed=3), byte_tokenizer()
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    theirs = lm_eval_cli(tmp_path / "model", data_dir, tmp_path / "out")

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
