"""Calibration sampling: shape, seed, recorded provenance, refusal when data is short."""

from __future__ import annotations

import pytest
import torch

from bench.errors import UsageError
from pruners.errors import PrunerError
from bench.sources.calibration import CalibrationSpec, load_calibration
from pruners.calibration import as_calibration, default_shape


@pytest.fixture
def byte_tok():
    from bench.sources.tiny import byte_tokenizer

    return byte_tokenizer()


@pytest.fixture
def rows(monkeypatch):
    import bench.sources.data

    docs = [f"document {i}: " + "lorem ipsum dolor sit amet " * (i % 5 + 1) for i in range(200)]
    monkeypatch.setattr(bench.sources.data, "load_rows", lambda dataset, split, data_dir=None: docs + ["", "   "])
    return docs


def test_shape_seed_and_record(byte_tok, rows):
    a = load_calibration(byte_tok, CalibrationSpec("c4", samples=6, seq_len=40, seed=1))
    b = load_calibration(byte_tok, CalibrationSpec("c4", samples=6, seq_len=40, seed=1))
    c = load_calibration(byte_tok, CalibrationSpec("c4", samples=6, seq_len=40, seed=2))
    assert a.input_ids.shape == (6, 40) and a.input_ids.dtype == torch.long
    assert torch.equal(a.input_ids, b.input_ids) and not torch.equal(a.input_ids, c.input_ids)
    assert a.info["source"] == "c4" and a.info["samples"] == 6 and a.info["seq_len"] == 40 and a.info["seed"] == 1
    assert a.info["tokens"] == 240
    assert byte_tok.bos_token_id not in a.input_ids  # no per-document special tokens
    assert byte_tok.eos_token_id in a.input_ids  # documents separated by EOS


def test_shorter_than_requested_is_refused(byte_tok, rows):
    with pytest.raises(PrunerError, match="fewer than the 1000 x 1000"):
        load_calibration(byte_tok, CalibrationSpec("wikitext2", samples=1000, seq_len=1000))


@pytest.mark.parametrize("fields,match", [
    (dict(source="c5"), "unknown calibration source"),
    (dict(samples=0), "at least 1 sample"),
    (dict(seq_len=1), "at least 1 sample of 2 tokens"),
])
def test_spec_validation(fields, match):
    with pytest.raises(UsageError, match=match):
        CalibrationSpec(**fields)


def test_defaults_follow_the_references():
    from bench.registry import get_method

    assert default_shape(get_method("nm")) == (128, 2048)
    assert default_shape(get_method("blockwise")) == (10, 64)


def test_as_calibration_accepts_tensor():
    cal = as_calibration(torch.ones(3, 5, dtype=torch.int32))
    assert cal.input_ids.dtype == torch.long and cal.samples == 3 and cal.seq_len == 5
    assert [b.shape[0] for b in cal.batches(2)] == [2, 1]
    with pytest.raises(ValueError):
        as_calibration(torch.ones(5))


def test_real_local_c4(byte_tok, data_dir):
    cal = load_calibration(byte_tok, CalibrationSpec("c4", samples=2, seq_len=64, seed=0), str(data_dir))
    assert cal.input_ids.shape == (2, 64) and cal.info["documents_used"] >= 1


# --------------------------------------------------------------------------- slimpajama, offline


def _slimpajama_dir(root, data_dir, files: int = 4):
    """A SlimPajama-format directory made from the local C4 sample: `files` .jsonl files."""
    import json

    from bench.sources.data import load_rows

    docs = load_rows("c4", "train", str(data_dir))
    root.mkdir(parents=True, exist_ok=True)
    per = len(docs) // files
    for i in range(files):
        with open(root / f"chunk{i}.jsonl", "w") as fh:
            for d in docs[i * per:(i + 1) * per]:
                fh.write(json.dumps({"text": d, "meta": {"redpajama_set_name": "c4"}}) + "\n")
    return root


def test_slimpajama_reads_the_local_corpus_directory_offline(byte_tok, data_dir, tmp_path, monkeypatch):
    from bench.sources.corpora_local import SLIMPAJAMA_DIR_ENV

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    corpus = _slimpajama_dir(tmp_path / "sp", data_dir)
    monkeypatch.setenv(SLIMPAJAMA_DIR_ENV, str(corpus))
    a = load_calibration(byte_tok, CalibrationSpec("slimpajama", samples=4, seq_len=64, seed=0))
    b = load_calibration(byte_tok, CalibrationSpec("slimpajama", samples=4, seq_len=64, seed=0))
    c = load_calibration(byte_tok, CalibrationSpec("slimpajama", samples=4, seq_len=64, seed=1))
    assert a.input_ids.shape == (4, 64) and torch.equal(a.input_ids, b.input_ids)
    assert not torch.equal(a.input_ids, c.input_ids)
    # The spec's corpus_dir names the same directory explicitly, with the same draw.
    monkeypatch.delenv(SLIMPAJAMA_DIR_ENV)
    d = load_calibration(byte_tok, CalibrationSpec("slimpajama", samples=4, seq_len=64, seed=0,
                                                   corpus_dir=str(corpus)))
    assert torch.equal(a.input_ids, d.input_ids) and d.info["corpus_dir"] == str(corpus)


def test_slimpajama_reads_only_the_files_the_samples_need(tmp_path):
    from bench.sources.calibration import directory_documents

    for i in range(5):
        (tmp_path / f"f{i}.jsonl").write_text("".join(f'{{"text": "file {i} doc {j} {"x" * 90}"}}\n'
                                                      for j in range(10)))
    docs = directory_documents(tmp_path, chars=1500, seed=0)
    files = {d.split()[1] for d in docs}
    assert len(files) == 2 and len(docs) == 20  # whole files, ~1,000 characters each
    assert directory_documents(tmp_path, chars=1500, seed=0) == docs
    assert {d.split()[1] for d in directory_documents(tmp_path, chars=10**9, seed=0)} == {"0", "1", "2", "3", "4"}


def test_a_slimpajama_file_without_text_is_refused_naming_it(byte_tok, tmp_path):
    (tmp_path / "a.jsonl").write_text('{"text": "fine"}\n')
    bad = tmp_path / "b.jsonl"
    bad.write_text('{"content": "no text field"}\n')
    with pytest.raises(UsageError) as err:
        load_calibration(byte_tok, CalibrationSpec("slimpajama", samples=1, seq_len=8, corpus_dir=str(tmp_path)))
    assert str(bad) in str(err.value) and "'text'" in str(err.value) and "\n" not in str(err.value)


def test_slimpajama_offline_without_a_directory_says_how_to_provide_one(byte_tok, monkeypatch):
    from bench.sources.corpora_local import SLIMPAJAMA_DIR_ENV

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv(SLIMPAJAMA_DIR_ENV, raising=False)
    with pytest.raises(UsageError, match=r"needs a local directory offline: set \$PRUNEBENCH_SLIMPAJAMA_DIR"):
        load_calibration(byte_tok, CalibrationSpec("slimpajama", samples=1, seq_len=8))
    with pytest.raises(UsageError, match="corpus_dir applies to calibration source 'slimpajama' only"):
        CalibrationSpec("c4", corpus_dir="/somewhere")


def test_sample_calibration_takes_documents_directly(byte_tok):
    from pruners.calibration import sample_calibration

    docs = [f"doc {i} " * 20 for i in range(30)]
    cal = sample_calibration(byte_tok, docs, samples=3, seq_len=16, seed=2)
    again = sample_calibration(byte_tok, docs, samples=3, seq_len=16, seed=2)
    assert cal.input_ids.shape == (3, 16) and torch.equal(cal.input_ids, again.input_ids)


def test_a_case_calibrates_on_its_post_training_corpus_directory(byte_tok, data_dir, tmp_path, monkeypatch):
    """A study's `corpus_dir` serves SlimPajama calibration too, with no environment variable:
    the case's calibration spec carries the recipe's directory from the moment the study is read."""
    from bench.env import RunEnv
    from bench.harness.runner import prune_model
    from bench.sources.corpora_local import SLIMPAJAMA_DIR_ENV
    from bench.sources.tiny import tiny_model
    from bench.studies import load_study, study_cases

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv(SLIMPAJAMA_DIR_ENV, raising=False)
    corpus = _slimpajama_dir(tmp_path / "sp", data_dir)
    study = tmp_path / "s.toml"
    study.write_text(f"""
[[models]]
spec = "tiny-llama"
key = "tiny"
[[methods]]
method = "depth"
ratios = [0.25]
[calibration]
source = "slimpajama"
samples = 2
seq_len = 32
[posttrain]
corpus = "slimpajama"
corpus_dir = "{corpus}"
tokens = 4096
checkpoint_every = 4096
""")
    (case,) = study_cases(load_study(study))
    assert case.calibration.corpus_dir == str(corpus)
    assert "corpus_dir" not in case.config()["prune"]  # not declared: the fingerprint does not move
    report, _ = prune_model(tiny_model(vocab_size=byte_tok.vocab_size), byte_tok, case, RunEnv.make(data_dir=data_dir))
    assert report["calibration"]["corpus_dir"] == str(corpus)
