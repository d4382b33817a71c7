"""`prunebench ppl` end to end through the installed console script."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from reports.records import SCHEMA


def _entry_point() -> list[str]:
    """The installed console script, as users run it (falls back to the module)."""
    script = os.path.join(os.path.dirname(sys.executable), "prunebench")
    return [script] if os.path.exists(script) else [sys.executable, "-m", "bench.cli"]


def prunebench(*args, env=None):
    return subprocess.run([*_entry_point(), *args], capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}, timeout=600)


def test_json_output_is_one_object(data_dir):
    out = prunebench("ppl", "--model", "tiny-qwen2", "--dataset", "ptb", "--seq-len", "64",
                     "--max-windows", "4", "--data-dir", str(data_dir), "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)  # exactly one JSON document, nothing else on stdout
    for key in ("ppl", "windows", "tokens", "seq_len", "dataset", "split"):
        assert key in result
    assert (result["dataset"], result["split"], result["windows"], result["tokens"]) == ("ptb", "validation", 4, 4 * 63)


def test_record_written_when_asked(data_dir, tmp_path):
    out = prunebench("ppl", "--model", "tiny-llama", "--dataset", "wikitext2", "--seq-len", "32",
                     "--max-windows", "2", "--data-dir", str(data_dir), "--results-dir", str(tmp_path))
    assert out.returncode == 0, out.stderr
    (record,) = (tmp_path / "records").glob("*.json")
    rec = json.loads(record.read_text())
    assert rec["schema"] == SCHEMA and "wikitext2:32" in rec["ppl"]
    assert rec["versions"]["torch"] and rec["machine"]["cpu_count"]


BAD = [
    (["--dataset", "wikitext3"], "unknown dataset 'wikitext3'"),
    (["--dataset", "ptb", "--split", "dev"], "unknown split 'dev'"),
    (["--model", "tiny-lama"], "unknown model 'tiny-lama'"),
    (["--seq-len", "1"], "at least 2"),
    (["--seq-len", "4096"], "exceeds the model's maximum positions"),
    (["--data-dir", "/nonexistent/data"], "does not exist"),
    (["--results-dir", "/proc/no/such"], "is not writable"),
    (["--max-windows", "0"], "at least 1"),
]


@pytest.mark.parametrize(("extra", "message"), BAD, ids=[m.split()[0] + "-" + e[0] for e, m in BAD])
def test_bad_input_one_line_exit_2(data_dir, tmp_path, extra, message):
    args = {"--model": "tiny-llama", "--dataset": "ptb", "--seq-len": "64", "--data-dir": str(data_dir)}
    for flag, value in zip(extra[::2], extra[1::2]):
        args[flag] = value
    out = prunebench("ppl", *[x for kv in args.items() for x in kv])
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("prunebench: error:") and message in lines[0], out.stderr
    assert out.stdout == ""


def test_missing_data_names_both_fixes(tmp_path):
    env = {"PRUNEBENCH_DATA_DIR": "", "HF_DATASETS_OFFLINE": "1"}
    out = prunebench("ppl", "--model", "tiny-llama", "--dataset", "ptb", "--seq-len", "64", env=env)
    assert out.returncode == 2
    assert "PRUNEBENCH_DATA_DIR" in out.stderr and "hub" in out.stderr


def test_checksum_mismatch_exit_2(data_dir, tmp_path):
    (tmp_path / "ptb").mkdir()
    (tmp_path / "ptb" / "ptb.valid.txt").write_text((data_dir / "ptb" / "ptb.valid.txt").read_text()[:-2])
    out = prunebench("ppl", "--model", "tiny-llama", "--dataset", "ptb", "--seq-len", "64",
                     "--data-dir", str(tmp_path))
    assert out.returncode == 2 and "checksum mismatch" in out.stderr and "ptb.valid.txt" in out.stderr


def test_not_a_gguf_exit_2(data_dir, tmp_path):
    fake = tmp_path / "x.gguf"
    fake.write_text("not gguf")
    out = prunebench("ppl", "--model", str(fake), "--dataset", "ptb", "--seq-len", "64",
                     "--data-dir", str(data_dir), "--cache-dir", str(tmp_path / "c"))
    assert out.returncode == 2 and "is not a GGUF file" in out.stderr
