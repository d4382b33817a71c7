"""Benchmark: a token stream read from the on-disk corpus cache vs tokenising the slice again.

The point of the cache is that an xdist worker or the next run does not re-tokenise. Each round
clears the in-process cache (as a new process starts) and reads the C4 sample's pre-training
slice (860 documents) through `corpus.token_stream`; the baseline, timed in the same run by the
setup hook, tokenises the same texts with the same BPE tokenizer. The ratio goes into
``extra_info`` (see ``--benchmark-json``); nothing is timed-asserted, the stream's equality is.
"""

from __future__ import annotations

import statistics
import time

import pytest

from bench.training import corpus

ROUNDS = 3


def bpe_tokenizer(texts: list[str], vocab_size: int = 4096):
    """A byte-level BPE trained here on `texts`: real merges, so tokenising costs what it does."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False,
                                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return PreTrainedTokenizerFast(tokenizer_object=tok)


@pytest.mark.benchmark(group="corpus-cache")
def test_cached_stream_vs_tokenising(benchmark, data_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("PRUNEBENCH_CACHE_DIR", str(tmp_path / "cache"))
    spec = corpus.SliceSpec("c4")
    tok = bpe_tokenizer(corpus.slice_texts(spec, "heldout", data_dir))
    texts = corpus.slice_texts(spec, "pretrain", data_dir)
    corpus._STREAMS.clear()
    first = corpus.token_stream(tok, spec, "pretrain", data_dir)  # tokenises and writes the entry
    times = []

    def tokenise_again():  # setup hook: untimed by pytest-benchmark, timed here as the baseline
        corpus._STREAMS.clear()
        t0 = time.perf_counter()
        again = corpus.tokenize(tok, texts)
        times.append(time.perf_counter() - t0)
        assert again.equal(first)

    result = benchmark.pedantic(corpus.token_stream, args=(tok, spec, "pretrain", data_dir),
                                setup=tokenise_again, rounds=ROUNDS)
    assert result.equal(first)
    if benchmark.stats is not None:  # None when benchmarks are disabled (e.g. under xdist)
        cached = benchmark.stats.stats.median
        info = {"tokens": first.numel(), "documents": len(texts), "tokenise_s": statistics.median(times),
                "cached_s": cached, "speedup_vs_tokenising": statistics.median(times) / cached}
        benchmark.extra_info.update(info)
        print(f"\ncorpus cache: {info['tokens']:,} tokens; tokenising {info['tokenise_s']:.3f} s, "
              f"cached {cached * 1e3:.1f} ms ({info['speedup_vs_tokenising']:.0f}x)")
