"""Exact parameter counts of LLM-Pruner block-wise pruning, from configs alone (meta device).

DESIGN.md section 4: Llama-3-8B at ratio 0.25, layers 4..30 leaves 6,612,586,496 of
8,030,261,248 parameters (82.3458%); TinyLlama v1.1, layers 4..18, leaves 945,907,712 of
1,100,048,384 (85.9878%).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.cli import main

CONFIGS = Path(__file__).resolve().parents[1] / "configs"

EXPECTED = [
    pytest.param("llama-3-8b.json", "4:30", 8_030_261_248, 6_612_586_496, "82.3458", id="llama-3-8b"),
    pytest.param("tinyllama-1.1b.json", "4:18", 1_100_048_384, 945_907_712, "85.9878", id="tinyllama-v1.1"),
]


@pytest.mark.parametrize("config,layers,before,after,pct", EXPECTED)
def test_blockwise_counts_from_config(config, layers, before, after, pct, capsys):
    rc = main(["prune", "--dry-run", "--model-config", str(CONFIGS / config), "--method", "blockwise",
               "--ratio", "0.25", "--layers", layers, "--json"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    record = json.loads(out)
    assert (record["params_before"], record["params_after"]) == (before, after)
    assert f"{record['remaining_pct']:.4f}" == pct
    assert record["dry_run"] is True
    assert type(record["params_before"]) is int and type(record["params_after"]) is int


def test_llama3_8b_per_layer_structure(capsys):
    """Layers 4..29 lose 2 of 8 KV groups (8 query heads) and 3,584 of 14,336 MLP channels."""
    main(["prune", "--dry-run", "--model-config", str(CONFIGS / "llama-3-8b.json"), "--method", "blockwise",
          "--ratio", "0.25", "--layers", "4:30", "--json"])
    record = json.loads(capsys.readouterr().out)
    sizes = record["layer_sizes"]
    pruned = {"num_attention_heads": 24, "num_key_value_heads": 6, "intermediate_size": 10752}
    full = {"num_attention_heads": 32, "num_key_value_heads": 8, "intermediate_size": 14336}
    assert sizes == [full] * 4 + [pruned] * 26 + [full] * 2
