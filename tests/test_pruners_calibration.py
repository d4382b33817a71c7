"""Calibration sampling: shape, seed, recorded provenance, refusal when data is short."""

from __future__ import annotations

import pytest
import torch

from bench.errors import UsageError
from pruners.calibration import CalibrationSpec, as_calibration, default_shape, load_calibration


@pytest.fixture
def byte_tok():
    from bench.models import byte_tokenizer

    return byte_tokenizer()


@pytest.fixture
def rows(monkeypatch):
    import bench.data

    docs = [f"document {i}: " + "lorem ipsum dolor sit amet " * (i % 5 + 1) for i in range(200)]
    monkeypatch.setattr(bench.data, "load_rows", lambda dataset, split, data_dir=None: docs + ["", "   "])
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
    with pytest.raises(UsageError, match="fewer than the 1000 x 1000"):
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
    assert default_shape("nm") == (128, 2048)
    assert default_shape("blockwise") == (10, 64)


def test_as_calibration_accepts_tensor():
    cal = as_calibration(torch.ones(3, 5, dtype=torch.int32))
    assert cal.input_ids.dtype == torch.long and cal.samples == 3 and cal.seq_len == 5
    assert [b.shape[0] for b in cal.batches(2)] == [2, 1]
    with pytest.raises(ValueError):
        as_calibration(torch.ones(5))


def test_real_local_c4(byte_tok, data_dir):
    cal = load_calibration(byte_tok, CalibrationSpec("c4", samples=2, seq_len=64, seed=0, data_dir=str(data_dir)))
    assert cal.input_ids.shape == (2, 64) and cal.info["documents_used"] >= 1
