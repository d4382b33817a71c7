"""The GPU check's table on any machine: rows render, `met` follows ratio and target, the report path."""

from __future__ import annotations

import torch

import gpu_check as gc


def test_rows_render_with_met_derived_from_ratio_and_target():
    before = list(gc.ROWS)  # the session's own rows stay as they were
    try:
        a = gc.add_row("ppl throughput", "s", prunebench="1 tok/s", baseline="2 tok/s", ratio=0.5, target=0.95)
        b = gc.add_row("ppl bf16 vs fp32", "s", ratio=0.001, target=0.005, higher_is_better=False)
        c = gc.add_row("2:4 Linear", "s", notes="needs a CUDA device | sm80")
        rows = gc.ROWS[len(before):]
    finally:
        gc.ROWS[:] = before
    assert (a["met"], b["met"], c["met"]) == ("no", "yes", "")
    assert a["target"] == ">= 0.95" and b["target"] == "<= 0.005"
    text = gc.render(rows, "header")
    lines = text.splitlines()
    assert lines[0] == "header" and lines[1].startswith("| check | setting |")
    assert len(lines) == 2 + 1 + 3 and all(line.count("|") == len(gc.COLUMNS) + 1 for line in lines[1:])


def test_report_path_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("PRUNEBENCH_GPU_REPORT", raising=False)
    monkeypatch.setenv("PRUNEBENCH_RESULTS_DIR", str(tmp_path))
    assert gc.report_path() == tmp_path / "gpu-check.md"
    monkeypatch.setenv("PRUNEBENCH_GPU_REPORT", str(tmp_path / "x.md"))
    assert gc.report_path() == tmp_path / "x.md"


def test_flops_per_token_counts_linears_and_attention():
    from bench.sources.tiny import tiny_model

    m = tiny_model("llama", vocab_size=100, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                   num_attention_heads=2, num_key_value_heads=1, head_dim=16, bos_token_id=None,
                   eos_token_id=None, pad_token_id=None)
    linear = sum(mod.weight.numel() for mod in m.modules() if isinstance(mod, torch.nn.Linear))
    assert linear == 2 * (32 * 32 + 2 * 16 * 32 + 32 * 32 + 3 * 32 * 64) + 100 * 32
    assert gc.train_flops_per_token(m, 128) == 3 * (2 * linear + 4 * 2 * 128 * 32)
