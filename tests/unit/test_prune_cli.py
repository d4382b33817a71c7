"""`prunebench prune`: bad input is one line and exit 2 with nothing written; --json is one object."""

from __future__ import annotations

import json

import pytest
import torch
from pruner_helpers import one_torch_thread  # noqa: F401

from bench.cli import main

TEXT = ["The quick brown fox jumps over the lazy dog. " * 20, "Pruning removes weights from a model. " * 20] * 20


@pytest.fixture
def fake_corpus(monkeypatch):
    """Calibration rows without touching disk or the hub (any dataset, any split)."""
    import bench.sources.data

    monkeypatch.setattr(bench.sources.data, "load_rows", lambda dataset, split, data_dir=None: list(TEXT))


def _run(capsys, argv):
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse errors
        rc = exc.code
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture
def gpt2_config(tmp_path):
    path = tmp_path / "gpt2.json"
    path.write_text(json.dumps({"model_type": "gpt2", "n_layer": 2, "n_embd": 16, "n_head": 2, "vocab_size": 50}))
    return str(path)


BAD = {
    "unknown-method": (["--method", "blockx", "--ratio", "0.2"], "did you mean 'blockwise'"),
    "unknown-importance": (["--method", "blockwise", "--ratio", "0.2", "--importance", "l3"], "unknown importance"),
    "unknown-taylor": (["--method", "blockwise", "--ratio", "0.2", "--importance", "taylor", "--taylor", "vector"],
                       "did you mean 'vectorize'"),
    "ratio-one": (["--method", "depth", "--ratio", "1.0"], r"[0, 1)"),
    "ratio-negative": (["--method", "width", "--ratio", "-0.1"], r"[0, 1)"),
    "ratio-missing": (["--method", "blockwise"], "needs --ratio"),
    "nm-ratio": (["--method", "nm", "--nm", "2:4", "--ratio", "0.3"], "sparsity is 0.5"),
    "nm-bad-pattern": (["--method", "nm", "--nm", "4:2"], "N < M"),
    "layers-outside": (["--method", "blockwise", "--ratio", "0.5", "--layers", "2:9"], "outside the model"),
    "layers-malformed": (["--method", "blockwise", "--ratio", "0.5", "--layers", "2-3"], "START:END"),
    "layers-for-depth": (["--method", "depth", "--ratio", "0.3", "--layers", "0:2"], "applies to blockwise"),
    "removes-all-layers": (["--method", "depth", "--ratio", "0.97"], "all of them"),
    "removes-all-channels": (["--method", "width", "--ratio", "0.995"], "every hidden channel"),
    "removes-all-mlp": (["--method", "blockwise", "--ratio", "0.999", "--attention", "off"], "every MLP channel"),
    "attention-demanded": (["--method", "blockwise", "--ratio", "0.25", "--attn-layers", "0:4"],
                           "too small to prune attention"),
    "calibration-short": (["--method", "depth", "--ratio", "0.3", "--samples", "500", "--seq-len", "100"],
                          "fewer than the"),
    "ppl-unknown": (["--method", "depth", "--ratio", "0.3", "--ppl", "wikitext3:128"], "did you mean 'wikitext2'"),
    "calibration-unknown": (["--method", "depth", "--ratio", "0.3", "--calibration", "wikitext"], "did you mean 'wikitext2'"),
    "depth-unit-unknown": (["--method", "depth", "--ratio", "0.3", "--depth-unit", "layer"], "did you mean 'layers'"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_one_line_exit_2_nothing_written(case, capsys, tmp_path, fake_corpus):
    args, match = BAD[case]
    out_dir = tmp_path / "out"
    rc, out, err = _run(capsys, ["prune", "--model", "tiny-llama", *args, "--out", str(out_dir), "--json"])
    assert rc == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("prunebench: error:"), err
    assert match in lines[0]
    assert not out_dir.exists()
    assert list(tmp_path.iterdir()) == []  # no temporary directory left either


def test_unsupported_architecture_dry_run(capsys, gpt2_config):
    rc, out, err = _run(capsys, ["prune", "--dry-run", "--model-config", gpt2_config, "--method", "depth",
                                 "--ratio", "0.5"])
    assert rc == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "unsupported architecture 'gpt2'" in err


def test_out_must_be_new(capsys, tmp_path, fake_corpus):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("keep me")
    rc, out, err = _run(capsys, ["prune", "--model", "tiny-llama", "--method", "nm", "--out", str(tmp_path / "taken")])
    assert rc == 2 and "already exists" in err
    assert (tmp_path / "taken" / "x").read_text() == "keep me"


def test_json_is_one_object_and_out_loads(capsys, tmp_path, fake_corpus):
    out_dir = tmp_path / "pruned"
    rc, out, err = _run(capsys, ["prune", "--model", "tiny-llama", "--method", "blockwise", "--ratio", "0.5",
                                 "--layers", "1:3", "--importance", "taylor", "--samples", "4", "--seq-len", "32",
                                 "--out", str(out_dir), "--json"])
    assert rc == 0, err
    record = json.loads(out)  # exactly one JSON document
    assert out.count("\n") == 1
    assert record["params_before"] > record["params_after"] > 0
    assert record["ratio"] == 1 - record["params_after"] / record["params_before"]
    assert record["calibration"]["samples"] == 4 and record["calibration"]["seq_len"] == 32
    assert record["out"] == str(out_dir)
    from pruners.report import count_params
    from pruners.saving import load_pruned

    model = load_pruned(out_dir)
    assert count_params(model) == record["params_after"]
    saved = json.loads((out_dir / "prunebench_report.json").read_text())
    assert saved["params_after"] == record["params_after"]
    assert (out_dir / "modeling_prunebench.py").is_file()  # variable widths


def test_text_output(capsys):
    rc, out, err = _run(capsys, ["prune", "--model", "tiny-qwen2", "--method", "nm", "--nm", "2:4"])
    assert rc == 0, err
    assert out.startswith("nm: ") and "% remain" in out


def test_ppl_in_json(capsys, data_dir):
    rc, out, err = _run(capsys, ["prune", "--model", "tiny-llama", "--method", "nm", "--nm-method", "wanda",
                                 "--calibration", "wikitext2", "--samples", "2", "--seq-len", "64",
                                 "--data-dir", str(data_dir), "--ppl", "wikitext2:32", "--ppl", "ptb:32",
                                 "--max-windows", "2", "--json"])
    assert rc == 0, err
    record = json.loads(out)
    assert set(record["ppl"]) == {"wikitext2:32", "ptb:32"}
    assert all(torch.isfinite(torch.tensor(r["ppl"])) and r["windows"] == 2 for r in record["ppl"].values())
    assert record["calibration"]["source"] == "wikitext2"


def test_save_is_atomic(tmp_path, monkeypatch):
    from pruner_helpers import tiny

    from pruners.saving import save_pruned

    class Broken:
        def save_pretrained(self, path):
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        save_pruned(tiny("llama"), tmp_path / "m", tokenizer=Broken())
    assert list(tmp_path.iterdir()) == []


def test_slimpajama_offline_is_one_line(capsys, tmp_path, fake_corpus, monkeypatch):
    """Offline with no local SlimPajama directory, the user is told which sources work."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("PRUNEBENCH_SLIMPAJAMA_DIR", raising=False)
    out_dir = tmp_path / "out"
    rc, out, err = _run(capsys, ["prune", "--model", "tiny-llama", "--method", "depth", "--ratio", "0.3",
                                 "--calibration", "slimpajama", "--out", str(out_dir), "--json"])
    assert rc == 2 and out == "" and not out_dir.exists()
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "'slimpajama' needs a local directory offline: set $PRUNEBENCH_SLIMPAJAMA_DIR" in lines[0]
    assert "use --calibration c4 or wikitext2" in lines[0]


# The hand-written options of `prunebench prune` before they were generated from the configs.
FLAGS_BEFORE = {
    "--model", "--method", "--ratio", "--importance", "--taylor", "--layers", "--attn-layers", "--mlp-layers",
    "--granularity", "--faithful", "--attention", "--variant", "--seq-agg", "--batch-agg", "--norm-agg", "--nm",
    "--nm-method", "--calibration", "--samples", "--seq-len", "--seed", "--batch-size", "--out", "--json",
    "--dry-run", "--model-config", "--ppl", "--max-windows", "--data-dir", "--cache-dir", "--device", "--dtype",
}


def test_generated_options_keep_every_flag():
    """Flags come from the method configs now; every earlier flag keeps its name, and each
    method's options sit in its own help group."""
    from bench.cli import build_parser

    parser = build_parser("prune")
    prune = parser._subparsers._group_actions[0].choices["prune"]
    flags = {s for a in prune._actions for s in a.option_strings}
    assert FLAGS_BEFORE <= flags
    assert {"--blocksize", "--percdamp", "--no-measure-speedup"} <= flags  # nm fields that had no flag
    groups = {g.title: {s for a in g._group_actions for s in a.option_strings} for g in prune._action_groups}
    assert groups["--method blockwise"] >= {"--importance", "--layers", "--faithful", "--attention"}
    assert groups["--method depth"] == {"--variant", "--depth-unit"}
    assert groups["--method width"] == {"--seq-agg", "--batch-agg", "--norm-agg"}
    assert {"--nm", "--nm-method"} <= groups["--method nm"]


def test_batch_size_for_a_method_without_it(capsys):
    rc, out, err = _run(capsys, ["prune", "--model", "tiny-llama", "--method", "blockwise", "--ratio", "0.2",
                                 "--batch-size", "2"])
    assert rc == 2 and err.strip() == ("prunebench: error: --batch-size applies to depth/nm/width pruning, "
                                       "not blockwise; drop it")


def test_value_of_wrong_type_is_one_line(capsys):
    rc, out, err = _run(capsys, ["prune", "--model", "tiny-llama", "--method", "nm", "--percdamp", "lots"])
    assert rc == 2 and err.strip() == "prunebench: error: --percdamp must be a number, got 'lots'"
