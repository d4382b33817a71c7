"""`prunebench eval` through `bench.cli.main`, what the console script calls (in process).

A hub task refused offline needs the environment set before `datasets` is imported: that one
runs the console script, in tests/integration/test_processes.py.
"""

from __future__ import annotations

import json
import sys

import pytest

pytest.importorskip("lm_eval")

from bench.sources.tiny import tiny_model  # noqa: E402


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def prunebench(capsys, *args) -> tuple[int, str, str]:
    """`prunebench ARGS` through bench.cli.main: (exit status, stdout, stderr)."""
    from bench.cli import main

    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_json_output_is_one_object(data_dir, tmp_path, capsys):
    code, out, err = prunebench(capsys, "eval", "--model", "tiny-llama", "--tasks", "wikitext,wikitext_lastword",
                                "--limit", "2", "--max-length", "128", "--data-dir", str(data_dir), "--json",
                                "--results-dir", str(tmp_path))
    assert code == 0, err
    result = json.loads(out)  # exactly one JSON document, nothing else on stdout
    tasks = [(r["task"], r["metric"]) for r in result["results"]]
    assert ("wikitext", "word_perplexity") in tasks and ("wikitext_lastword", "acc") in tasks
    assert all(r["samples"] == 2 and r["limit"] == 2 for r in result["results"])
    assert result["protocol"]["max_length"] == 128 and result["model"]["spec"] == "tiny-llama"
    (record,) = (tmp_path / "records").glob("*.json")
    assert json.loads(record.read_text())["zeroshot"]["results"] == result["results"]


def test_default_window_is_the_models_positions(data_dir, capsys):
    code, out, err = prunebench(capsys, "eval", "--model", "tiny-llama", "--tasks", "wikitext_lastword", "--limit", "1",
                                "--data-dir", str(data_dir), "--json")
    assert code == 0, err
    assert json.loads(out)["protocol"]["max_length"] == 512  # tiny config: 512 positions < 2048


@pytest.fixture(scope="module")
def no_tokenizer_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("no-tok")
    tiny_model("llama").save_pretrained(path)
    return path


BAD = [
    (["--tasks", "wikitxt"], "unknown zero-shot task 'wikitxt' (did you mean 'wikitext'?)"),
    (["--limit", "0"], "--limit must be at least 1"),
    (["--model", "NO_TOKENIZER"], "has no tokenizer"),
    (["--max-length", "4096"], "exceeds the model's maximum positions"),
    (["--tasks", ""], "no zero-shot tasks"),
    (["LM_EVAL_MISSING"], "pip install 'prunebench[lm-eval]'"),
]


@pytest.mark.parametrize(("extra", "message"), BAD, ids=[m.split()[0] + "-" + e[0] for e, m in BAD])
def test_bad_input_one_line_exit_2(data_dir, tmp_path, no_tokenizer_dir, monkeypatch, capsys, extra, message):
    from bench.cli import main

    args = {"--model": "tiny-llama", "--tasks": "wikitext", "--data-dir": str(data_dir),
            "--results-dir": str(tmp_path / "results")}
    if extra == ["LM_EVAL_MISSING"]:
        # What `import lm_eval` does when the extra is not installed.
        monkeypatch.setitem(sys.modules, "lm_eval", None)
        extra = []
    for flag, value in zip(extra[::2], extra[1::2]):
        args[flag] = str(no_tokenizer_dir) if value == "NO_TOKENIZER" else value
    code = main(["eval", *[x for kv in args.items() for x in kv]])
    out = capsys.readouterr()
    assert code == 2, out.err
    lines = out.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("prunebench: error:") and message in lines[0], out.err
    assert out.out == ""
    assert not (tmp_path / "results" / "records").exists()  # nothing written
