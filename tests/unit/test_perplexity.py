"""The LLM-Pruner perplexity protocol: windowing, joining, the loss, and its guards."""

from __future__ import annotations

from bench.env import RunEnv

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.sources import data

from bench.evaluation import perplexity
from bench.errors import UsageError
from bench.sources.tiny import byte_tokenizer, tiny_model


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
                                 data_dir=data_dir)
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
                                data_dir=data_dir)["ppl"] for b in (1, 3, 10)]
    assert runs[0] == pytest.approx(runs[1], rel=1e-6) == pytest.approx(runs[2], rel=1e-6)


def test_one_bos_at_the_start_of_the_stream_only(tiny, data_dir):
    model, tok = tiny
    text = data.joined_text("wikitext2", "test", data_dir)
    stream = perplexity.encode_stream(tok, text)
    assert int(stream[0]) == tok.bos_token_id
    assert int((stream == tok.bos_token_id).sum()) == 1
    res = perplexity.evaluate(model, tok, "wikitext2", 128, max_windows=2, data_dir=data_dir)
    assert res["bos_at_start"] is True and res["stream_tokens"] == stream.numel()


def test_record_carries_the_protocol(tiny, data_dir):
    model, tok = tiny
    res = perplexity.evaluate(model, tok, "wikitext2", 128, max_windows=3, data_dir=data_dir)
    for key in ("ppl", "nll", "tokens", "windows", "seq_len", "dataset", "split", "dtype",
                "max_windows", "window_selection", "batch_size", "data"):
        assert key in res
    assert res["data"]["sha256"] == data.SOURCES["wikitext2"]["test"].sha256
    assert math.exp(res["nll"]) == pytest.approx(res["ppl"])


@pytest.mark.parametrize(("seq_len", "pattern"), [(1, "at least 2"), (513, "maximum positions \\(512\\)")])
def test_bad_seq_len(tiny, data_dir, seq_len, pattern):
    model, tok = tiny
    with pytest.raises(UsageError, match=pattern):
        perplexity.evaluate(model, tok, "ptb", seq_len, data_dir=data_dir)


def test_text_shorter_than_one_window(data_dir):
    model = tiny_model("llama", max_position_embeddings=10**7)
    with pytest.raises(UsageError, match="shorter than one window"):
        perplexity.evaluate(model, byte_tokenizer(), "ptb", 5 * 10**6, data_dir=data_dir)


def test_unknown_dataset(tiny, data_dir):
    model, tok = tiny
    with pytest.raises(UsageError, match="unknown evaluation dataset"):
        perplexity.evaluate(model, tok, "c4", 128, data_dir=data_dir)


# ----------------------------------------------------------------------------- the chunked loss


def _head_with_bias(model):
    """The same model with a biased LM head (no HF Llama/Qwen2 has one; the chunked path must not care)."""
    old = model.lm_head
    new = torch.nn.Linear(old.in_features, old.out_features, bias=True)
    with torch.no_grad():
        new.weight.copy_(old.weight)
        new.bias.copy_(torch.randn(old.out_features, generator=torch.Generator().manual_seed(3)))
    model.lm_head = new
    return model


CHUNK_MODELS = {
    "llama": lambda: tiny_model("llama", seed=2),
    "llama-tied": lambda: tiny_model("llama", seed=2, tie_word_embeddings=True),
    "qwen2": lambda: tiny_model("qwen2", seed=2),
    "qwen2-tied": lambda: tiny_model("qwen2", seed=2, tie_word_embeddings=True),
    "qwen2-head-bias": lambda: _head_with_bias(tiny_model("qwen2", seed=2)),
}


@pytest.mark.parametrize("name", CHUNK_MODELS)
@pytest.mark.parametrize("tile", [None, (7, 50), (3, 259), (64, 1)])
def test_chunked_loss_equals_the_full_logits_path(name, tile):
    model = CHUNK_MODELS[name]().eval()
    ids = torch.randint(0, 259, (3, 40), generator=torch.Generator().manual_seed(0))  # (B, S)
    assert perplexity.trunk_and_head(model) is not None
    with torch.inference_mode():
        full = perplexity.token_nll(model(input_ids=ids).logits, ids).sum(dtype=torch.float64)
        trunk, head = perplexity.trunk_and_head(model)
        chunked = perplexity.chunked_nll_sum(trunk(input_ids=ids).last_hidden_state, head, ids, tile=tile)
    assert float(chunked) == pytest.approx(float(full), rel=1e-6)
    # and through the public entry, which picks the chunked path by itself
    a = perplexity.window_nll_sum(model, ids, 2)
    b = perplexity.window_nll_sum(model, ids, 2, chunked=False)
    assert a[1] == b[1] and a[0] == pytest.approx(b[0], rel=1e-6)


def test_chunked_ppl_matches_the_hand_written_protocol_on_qwen2(data_dir):
    model, tok = tiny_model("qwen2", seed=4, tie_word_embeddings=True), byte_tokenizer()
    result = perplexity.evaluate(model, tok, "wikitext2", 48, max_windows=6, batch_size=4,
                                 data_dir=data_dir)
    ids = perplexity.encode_stream(tok, data.joined_text("wikitext2", "test", data_dir))
    windows = perplexity.make_windows(ids, 48)[perplexity.select_windows(len(ids) // 48, 6)]
    assert result["ppl"] == pytest.approx(bare_ppl(model, windows), rel=1e-6)


def _largest_tensor(fn) -> int:
    """The most elements any op output had while `fn` ran (a real dispatch-level observer)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Largest(TorchDispatchMode):
        most = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for t in out if isinstance(out, (tuple, list)) else [out]:
                if isinstance(t, torch.Tensor):
                    Largest.most = max(Largest.most, t.numel())
            return out

    with Largest():
        fn()
    return Largest.most


@pytest.mark.parametrize("vocab, seq", [(4096, 64), (16384, 256)])
def test_chunked_loss_peak_is_independent_of_vocab_times_seq(vocab, seq, monkeypatch):
    monkeypatch.setitem(perplexity.CHUNK_BYTES, "cpu", 256 << 10)  # 64k floats per tile
    head = torch.nn.Linear(16, vocab, bias=False)
    hidden = torch.randn(2, seq, 16)
    ids = torch.randint(0, vocab, (2, seq))
    with torch.inference_mode():
        most = _largest_tensor(lambda: perplexity.chunked_nll_sum(hidden, head, ids))
        full_most = _largest_tensor(lambda: perplexity.token_nll(head(hidden), ids))
    assert full_most >= 2 * seq * vocab  # the full path holds all logits ...
    assert most <= max((256 << 10) // 4, head.weight.numel())  # ... the chunked one a tile (the weight is the model's)


def test_unknown_architectures_take_the_full_logits_path():
    from transformers import GPT2Config, GPT2LMHeadModel

    gpt2 = GPT2LMHeadModel(GPT2Config(n_embd=32, n_layer=1, n_head=2, vocab_size=259, n_positions=64)).eval()
    assert perplexity.trunk_and_head(gpt2) is None
    ids = torch.randint(0, 259, (2, 16), generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        expect = F.cross_entropy(gpt2(ids).logits[:, :-1].flatten(0, 1), ids[:, 1:].flatten(), reduction="sum")
    total, n = perplexity.window_nll_sum(gpt2, ids, 2)
    assert n == 2 * 15 and total == pytest.approx(float(expect), rel=1e-6)


# ----------------------------------------------------------------------------- device_map'd models


def test_chunked_loss_on_a_device_mapped_model_with_an_offloaded_head(tmp_path, data_dir):
    """accelerate hooks: the head's weights live on disk and arrive per call; the number is unchanged."""
    from bench.sources.models import load_model

    tiny_model("llama", seed=6).save_pretrained(tmp_path / "m")
    plain = load_model(str(tmp_path / "m"), RunEnv.make(device="cpu", cache_dir=tmp_path / "cache"))
    mapped = load_model(str(tmp_path / "m"), RunEnv.make(device="cpu", cache_dir=tmp_path / "cache"),
                        device_map={"model": "cpu", "lm_head": "disk"})
    assert plain.info["placement"] == {"device_map": None, "devices": ["cpu"]}
    assert mapped.info["placement"] == {"device_map": {"model": "cpu", "lm_head": "disk"}, "devices": ["cpu", "disk"]}
    assert mapped.model.lm_head.weight.device.type == "meta"  # really offloaded
    kw = dict(max_windows=4, batch_size=2, data_dir=data_dir)
    a = perplexity.evaluate(plain.model, byte_tokenizer(), "wikitext2", 64, **kw)
    b = perplexity.evaluate(mapped.model, byte_tokenizer(), "wikitext2", 64, **kw)
    assert b["ppl"] == pytest.approx(a["ppl"], rel=1e-6)


def test_load_model_reads_the_target_dtype(tmp_path):
    from bench.sources.models import load_model

    tiny_model("qwen2", seed=6).save_pretrained(tmp_path / "m")
    loaded = load_model(str(tmp_path / "m"), RunEnv.make(device="cpu"), dtype="bf16")
    assert {p.dtype for p in loaded.model.parameters()} == {torch.bfloat16}
    assert loaded.info["dtype"] == "bfloat16" and loaded.info["placement"]["devices"] == ["cpu"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for machines without CUDA")
def test_cuda_device_map_on_a_cpu_only_machine(tmp_path):
    from bench.sources.models import load_model

    with pytest.raises(UsageError, match="device_map places modules on cuda:1, but this machine has no CUDA device"):
        load_model(str(tmp_path / "never-read"), RunEnv.make(device="cpu"), device_map={"model": "cpu", "lm_head": "cuda:1"})


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for machines without CUDA")
def test_device_cuda_on_a_cpu_only_machine():
    from bench.sources.devices import resolve_device

    with pytest.raises(UsageError, match="device 'cuda' asked for, but this machine has no CUDA device"):
        resolve_device("cuda")
    with pytest.raises(UsageError, match="unknown device 'gpu'"):
        resolve_device("gpu")
