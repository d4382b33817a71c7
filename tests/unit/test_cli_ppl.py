"""`prunebench ppl` through `bench.cli.main`, what the console script calls (in process).

The installed console script itself is run by tests/integration/test_processes.py.
"""

from __future__ import annotations

import json

import pytest

from bench.cli import main
from reports.records import SCHEMA


def prunebench(capsys, *args) -> tuple[int, str, str]:
    """`prunebench ARGS`: (exit status, stdout, stderr)."""
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_record_written_when_asked(data_dir, tmp_path, capsys):
    code, _, err = prunebench(capsys, "ppl", "--model", "tiny-llama", "--dataset", "wikitext2", "--seq-len", "32",
                              "--max-windows", "2", "--data-dir", str(data_dir), "--results-dir", str(tmp_path))
    assert code == 0, err
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
def test_bad_input_one_line_exit_2(data_dir, capsys, extra, message):
    args = {"--model": "tiny-llama", "--dataset": "ptb", "--seq-len": "64", "--data-dir": str(data_dir)}
    for flag, value in zip(extra[::2], extra[1::2]):
        args[flag] = value
    code, out, err = prunebench(capsys, "ppl", *[x for kv in args.items() for x in kv])
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("prunebench: error:") and message in lines[0], err
    assert out == ""


def test_missing_data_names_both_fixes(monkeypatch, capsys):
    monkeypatch.setenv("PRUNEBENCH_DATA_DIR", "")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    code, _, err = prunebench(capsys, "ppl", "--model", "tiny-llama", "--dataset", "ptb", "--seq-len", "64")
    assert code == 2
    assert "PRUNEBENCH_DATA_DIR" in err and "hub" in err


def test_checksum_mismatch_exit_2(data_dir, tmp_path, capsys):
    (tmp_path / "ptb").mkdir()
    (tmp_path / "ptb" / "ptb.valid.txt").write_text((data_dir / "ptb" / "ptb.valid.txt").read_text()[:-2])
    code, _, err = prunebench(capsys, "ppl", "--model", "tiny-llama", "--dataset", "ptb", "--seq-len", "64",
                              "--data-dir", str(tmp_path))
    assert code == 2 and "checksum mismatch" in err and "ptb.valid.txt" in err


def test_not_a_gguf_exit_2(data_dir, tmp_path, capsys):
    fake = tmp_path / "x.gguf"
    fake.write_text("not gguf")
    code, _, err = prunebench(capsys, "ppl", "--model", str(fake), "--dataset", "ptb", "--seq-len", "64",
                              "--data-dir", str(data_dir), "--cache-dir", str(tmp_path / "c"))
    assert code == 2 and "is not a GGUF file" in err
