"""The LLM-Pruner perplexity protocol: windowing, joining, the loss, and its guards."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from bench import data, perplexity
from bench.errors import UsageError
from bench.models import byte_tokenizer, tiny_model


@given(n_tokens=st.integers(2, 500), seq_len=st.integers(2, 64))
@settings(max_examples=50, deadline=None)
def test_windows_are_disjoint_and_drop_the_partial_tail(n_tokens, seq_len):
    ids = torch.arange(n_tokens)
    if n_tokens < seq_len:
        with pytest.raises(UsageError, match="shorter than one window"):
            perplexity.make_windows(ids, seq_len)
        return
    win = perplexity.make_windows(ids, seq_len)
    assert win.shape == (n_tokens // seq_len, seq_len)
    assert torch.equal(win.flatten(), ids[: win.numel()])  # contiguous, no overlap, in order


@given(n=st.integers(1, 3000), k=st.integers(1, 3000))
@settings(max_examples=50, deadline=None)
def test_window_subset_is_evenly_spaced_and_sorted(n, k):
    chosen = perplexity.select_windows(n, k)
    assert len(chosen) == min(n, k)
    assert chosen[0] == 0 and chosen == sorted(set(chosen)) and chosen[-1] < n


def bare_ppl(model, windows: torch.Tensor) -> float:
    """The protocol written out by hand, one window at a time."""
    nlls = []
    with torch.no_grad():
        for w in windows:
            logits = model(w[None]).logits[0]
            nlls.append(F.cross_entropy(logits[:-1], w[1:], reduction="none"))
    return math.exp(torch.cat(nlls).mean().item())


@pytest.fixture(scope="module")
def tiny():
    return tiny_model("llama", seed=1), byte_tokenizer()


def test_ppl_matches_hand_written_protocol(tiny, data_dir):
    model, tok = tiny
    result = perplexity.evaluate(model, tok, "ptb", 64, max_windows=12, batch_size=5,
                                 data_dir=data_dir, progress=False)
    text = "\n\n".join(data.load_rows("ptb", "validation", data_dir))
    ids = torch.tensor(tok(text)["input_ids"])
    windows = perplexity.make_windows(ids, 64)[perplexity.select_windows(len(ids) // 64, 12)]
    assert result["ppl"] == pytest.approx(bare_ppl(model, windows), rel=1e-5)
    assert result["tokens"] == 12 * 63 and result["windows"] == 12
    assert result["windows_total"] == len(ids) // 64
    assert result["split"] == "validation" and result["protocol"] == "llm-pruner"


def test_batch_size_does_not_change_ppl(tiny, data_dir):
    model, tok = tiny
    runs = [perplexity.evaluate(model, tok, "wikitext2", 32, max_windows=10, batch_size=b,
                                data_dir=data_dir, progress=False)["ppl"] for b in (1, 3, 10)]
    assert runs[0] == pytest.approx(runs[1], rel=1e-6) == pytest.approx(runs[2], rel=1e-6)


def test_one_bos_at_the_start_of_the_stream_only(tiny, data_dir):
    model, tok = tiny
    text = data.joined_text("wikitext2", "test", data_dir)
    stream = perplexity.encode_stream(tok, text)
    assert int(stream[0]) == tok.bos_token_id
    assert int((stream == tok.bos_token_id).sum()) == 1
    res = perplexity.evaluate(model, tok, "wikitext2", 128, max_windows=2, data_dir=data_dir, progress=False)
    assert res["bos_at_start"] is True and res["stream_tokens"] == stream.numel()


def test_record_carries_the_protocol(tiny, data_dir):
    model, tok = tiny
    res = perplexity.evaluate(model, tok, "wikitext2", 128, max_windows=3, data_dir=data_dir, progress=False)
    for key in ("ppl", "nll", "tokens", "windows", "seq_len", "dataset", "split", "dtype",
                "max_windows", "window_selection", "batch_size", "data"):
        assert key in res
    assert res["data"]["sha256"] == data.SOURCES["wikitext2"]["test"].sha256
    assert math.exp(res["nll"]) == pytest.approx(res["ppl"])


@pytest.mark.parametrize(("seq_len", "pattern"), [(1, "at least 2"), (513, "maximum positions \\(512\\)")])
def test_bad_seq_len(tiny, data_dir, seq_len, pattern):
    model, tok = tiny
    with pytest.raises(UsageError, match=pattern):
        perplexity.evaluate(model, tok, "ptb", seq_len, data_dir=data_dir, progress=False)


def test_text_shorter_than_one_window(data_dir):
    model = tiny_model("llama", max_position_embeddings=10**7)
    with pytest.raises(UsageError, match="shorter than one window"):
        perplexity.evaluate(model, byte_tokenizer(), "ptb", 5 * 10**6, data_dir=data_dir, progress=False)


def test_unknown_dataset(tiny, data_dir):
    model, tok = tiny
    with pytest.raises(UsageError, match="unknown evaluation dataset"):
        perplexity.evaluate(model, tok, "c4", 128, data_dir=data_dir, progress=False)
