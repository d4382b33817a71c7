"""`prunebench eval` end to end through the installed console script."""

from __future__ import annotations

import json
import sys

import pytest

pytest.importorskip("lm_eval")

from bench.sources.tiny import tiny_model  # noqa: E402
from test_cli_ppl import prunebench  # noqa: E402


def test_json_output_is_one_object(data_dir, tmp_path):
    out = prunebench("eval", "--model", "tiny-llama", "--tasks", "wikitext,wikitext_lastword", "--limit", "2",
                     "--max-length", "128", "--data-dir", str(data_dir), "--json",
                     "--results-dir", str(tmp_path))
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)  # exactly one JSON document, nothing else on stdout
    tasks = [(r["task"], r["metric"]) for r in result["results"]]
    assert ("wikitext", "word_perplexity") in tasks and ("wikitext_lastword", "acc") in tasks
    assert all(r["samples"] == 2 and r["limit"] == 2 for r in result["results"])
    assert result["protocol"]["max_length"] == 128 and result["model"]["spec"] == "tiny-llama"
    (record,) = (tmp_path / "records").glob("*.json")
    assert json.loads(record.read_text())["zeroshot"]["results"] == result["results"]


def test_default_window_is_the_models_positions(data_dir):
    out = prunebench("eval", "--model", "tiny-llama", "--tasks", "wikitext_lastword", "--limit", "1",
                     "--data-dir", str(data_dir), "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["protocol"]["max_length"] == 512  # tiny config: 512 positions < 2048


def test_hub_task_offline_names_the_offline_tasks(data_dir, tmp_path):
    # A subprocess, so HF_HUB_OFFLINE/HF_DATASETS_OFFLINE are set before `datasets` reads them.
    out = prunebench("eval", "--model", "tiny-llama", "--tasks", "wikitext,boolq", "--data-dir", str(data_dir),
                     "--results-dir", str(tmp_path / "results"))
    assert out.returncode == 2 and out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "task boolq" in lines[0] and "offline tasks: wikitext, wikitext_lastword" in lines[0]
    assert not (tmp_path / "results" / "records").exists()


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
    # In process (bench.cli.main is what the console script calls): each case then costs no
    # interpreter start-up; test_json_output_is_one_object covers the script itself.
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
