"""The `paper` pipeline end to end at a tiny budget, offline (issue 10 item 8).

What runs is the shipped bench/studies/paper.toml with only its budgets rewritten (tokens,
batch and checkpoint tokens, calibration samples, evaluation windows; zero-shot off): the same
six hub ids, methods, Table 1 ratios, families and held-out sizes. The hub ids resolve offline
to small random checkpoints saved under those names in a models directory (`bench.sources.hub`), and
SlimPajama is a SlimPajama-format directory made from the local C4 sample (.jsonl, .jsonl.zst
and .parquet files), read by both calibration and post-training.

The tiny models keep each real model's layer count (16, 28 and 32 for Llama-3.2-1B/3B and
Llama-3.1-8B; 24, 28 and 36 for the Qwen2.5 models), so Table 1's depth targets remove whole
layers in the same proportions, and sizes grow within each family as the law's fit expects.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.studies.schema import BUILTIN_DIR, read_with_includes
from hub_helpers import save_tiny
from paper_study import HUB, TABLE1_DEPTH, paper_ids

LAYERS = {"llama-3.2-1b": 16, "llama-3.2-3b": 28, "llama-3.1-8b": 32,
          "qwen2.5-0.5b": 24, "qwen2.5-1.5b": 28, "qwen2.5-3b": 36}
# Tiny budgets, in the paper's proportions: 0.5B-token models train half as long as 1B-token ones.
SEQ = 64
BATCH = 4 * SEQ
BUDGET = {0.5e9: 2 * BATCH, 1e9: 4 * BATCH}


def tiny_paper_study(path: Path) -> Path:
    """bench/studies/paper.toml with its budgets rewritten, written to `path`."""
    raw = read_with_includes(BUILTIN_DIR / "paper.toml")
    raw["study"]["name"] = "paper"
    for model in raw["models"]:
        tokens = model["posttrain"]["tokens"]
        model["posttrain"]["tokens"] = BUDGET[0.5e9 if tokens < 0.75e9 else 1e9]
    raw["calibration"].update(samples=4, seq_len=SEQ)
    raw["posttrain"].update(checkpoint_every=BATCH, batch_tokens=BATCH, micro_batch_tokens=BATCH, seq_len=SEQ,
                            warmup_tokens=BATCH, eval_windows=4, grad_checkpointing=False)
    raw["evaluation"]["max_windows"] = 1
    raw.pop("zeroshot", None)
    path.write_text(to_toml(raw))
    return path


def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(type(v))


def to_toml(raw: dict) -> str:
    """A study's tables as TOML (tables, arrays of tables, inline values; what study files use)."""
    out = []
    for name, value in raw.items():
        if isinstance(value, dict):
            out.append(f"[{name}]")
            out += [f"{json.dumps(k)} = {_value(v)}" for k, v in value.items()]
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for entry in value:
                out.append(f"[[{name}]]")
                out += [f"{json.dumps(k)} = {_value(v)}" for k, v in entry.items()]
        else:
            out.insert(0, f"{name} = {_value(value)}")
        out.append("")
    return "\n".join(out)


def save_models(root: Path) -> Path:
    """Small random checkpoints (with the byte tokenizer) under the paper's hub ids."""
    for key, layers in LAYERS.items():
        arch = "llama" if key.startswith("llama") else "qwen2"
        save_tiny(root / HUB[key], arch=arch, seed=layers, hidden_size=32, intermediate_size=64,
                  num_hidden_layers=layers, num_attention_heads=2, num_key_value_heads=1, head_dim=16,
                  max_position_embeddings=2048)
    return root


def slimpajama_dir(root: Path, data_dir: Path) -> Path:
    """The local C4 sample as a SlimPajama-format directory: .jsonl, .jsonl.zst and .parquet files."""
    from bench.sources.data import load_rows

    docs = load_rows("c4", "train", str(data_dir))
    records = [json.dumps({"text": d, "meta": {"redpajama_set_name": "RedPajamaC4"}}) + "\n" for d in docs]
    parts = [records[i::4] for i in range(4)]
    (root / "train" / "chunk1").mkdir(parents=True)
    for i in (0, 1):
        (root / "train" / "chunk1" / f"example_train_{i}.jsonl").write_text("".join(parts[i]))
    try:
        import zstandard

        (root / "train" / "chunk1" / "example_train_2.jsonl.zst").write_bytes(
            zstandard.ZstdCompressor().compress("".join(parts[2]).encode()))
    except ImportError:
        (root / "train" / "chunk1" / "example_train_2.jsonl").write_text("".join(parts[2]))
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({"text": [json.loads(r)["text"] for r in parts[3]]}),
                       root / "train" / "chunk1" / "example_train_3.parquet")
    except ImportError:
        (root / "train" / "chunk1" / "example_train_3.jsonl").write_text("".join(parts[3]))
    return root


@pytest.fixture(scope="module")
def paper_inputs(data_dir, tmp_path_factory):
    """The models directory, the SlimPajama directory and the study file.

    Module-scoped, so it runs before pytester takes its snapshot of sys.modules: what it imports
    (pyarrow, zstandard) stays imported after the test (pytester drops every module a test imports).
    """
    root = tmp_path_factory.mktemp("paper-inputs")
    return (save_models(root / "models"), slimpajama_dir(root / "slimpajama", data_dir),
            tiny_paper_study(root / "paper-tiny.toml"))


def test_the_paper_study_runs_end_to_end_at_a_tiny_budget_offline(paper_inputs, bench_repo, tmp_path, monkeypatch):
    models, slimpajama, study = paper_inputs
    monkeypatch.setenv("PRUNEBENCH_SLIMPAJAMA_DIR", str(slimpajama))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-empty"))  # nothing from a warm HF cache
    # The report step's bootstrap: 6 replicates instead of 100 (11 s -> 1.4 s of fitting 48 records);
    # what is checked here (a fit per family, the held-out rows) does not depend on them.
    monkeypatch.setenv("PRUNEBENCH_BOOTSTRAP", "6")
    results = tmp_path / "results"
    run = bench_repo.runpytest_subprocess(
        f"--study={study}", f"--models-dir={models}", f"--results-dir={results}", f"--cache-dir={tmp_path / 'cache'}",
        "--device=cpu", "--threads=1", "-p", "no:cacheprovider", "-q", timeout=900)
    assert run.ret == 0, run.stdout.str()[-3000:] + run.stderr.str()[-3000:]
    records = {p.stem: json.loads(p.read_text()) for p in (results / "records").glob("*.json")}
    assert sorted(records) == sorted(paper_ids())  # every case of the paper ran, under its id
    for case_id, rec in records.items():
        assert rec["status"] == "ok", case_id
        info = rec["model"]["info"]
        assert (info["source"], info["hub_id"]) == ("models-dir", rec["model"]["spec"])
        assert rec["provenance"]["model"]["revision"].startswith("sha256:")
        assert rec["posttrain"]["slices"]["data"]["source"] == "local"
        if rec["method"] not in ("control",):
            assert rec["provenance"]["data"]["calibration:slimpajama"]
    for key, depth in TABLE1_DEPTH.items():  # whole layers, more of them at each larger Table 1 ratio
        removed = [records[f"paper-{key}-depth-{r / 100:g}"]["prune_report"]["removed"]["k"] for r in depth]
        assert 0 < removed[0] < removed[1] < removed[2] < LAYERS[key], (key, removed)
    fit = json.loads((results / "fit.json").read_text())
    assert {g["family"] for g in fit["groups"]} == {"llama-3", "qwen2.5"}  # a fit per family
    report = (results / "report.md").read_text()
    heldout = report.split("## Extrapolation to held-out models", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in heldout.splitlines() if line.startswith("| ") and "@" in line]
    assert {line.split("|")[2].strip() for line in rows} == {"llama-3.1-8b", "qwen2.5-3b"}
    assert any(line.startswith("| llama-3/") for line in rows) and any(line.startswith("| qwen2.5/") for line in rows)
