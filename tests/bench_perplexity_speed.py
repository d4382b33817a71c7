"""Perplexity throughput against bare loops over the same model, windows and batch size.

The issue's bar: prunebench's evaluation reaches >= 95% of the tokens/s of a bare loop.
Two baselines are timed in the same run, interleaved round by round so machine noise hits
all three alike:

* ``bare``: the minimal hand-written perplexity loop (LLM-Pruner's: model call, shifted
  cross-entropy, mean) — the same work, without the harness;
* ``logits``: the model calls alone, no loss at all — an upper bound no perplexity can reach.

The ratios are stored in the benchmark's ``extra_info`` (see ``--benchmark-json``) and
printed; this is a benchmark, not a timed assert, so it reports instead of failing.
"""

from __future__ import annotations

import statistics
import time

import pytest
import torch
import torch.nn.functional as F

from bench import data, perplexity
from bench.models import byte_tokenizer, tiny_model

SEQ_LEN, WINDOWS, BATCH, ROUNDS = 128, 16, 8, 5
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


@pytest.fixture(scope="module", params=DEVICES)
def setup(request, data_dir):
    device = torch.device(request.param)
    # A real LLM's vocabulary size keeps the loss computation's share realistic.
    model = tiny_model("llama", vocab_size=49152, hidden_size=256, intermediate_size=768,
                       num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2, head_dim=64)
    model.to(device=device, dtype=torch.bfloat16 if device.type == "cuda" else torch.float32).eval()
    tok = byte_tokenizer()
    stream = perplexity.encode_stream(tok, data.joined_text("wikitext2", "test", data_dir))
    n = stream.numel() // SEQ_LEN
    windows = perplexity.make_windows(stream, SEQ_LEN)[perplexity.select_windows(n, WINDOWS)].to(device)
    return model, tok, windows, device


def test_ppl_throughput_vs_bare_loops(benchmark, setup, data_dir):
    model, tok, windows, device = setup
    times = {"prunebench": [], "bare": [], "logits": []}

    def prunebench():
        perplexity.evaluate(model, tok, "wikitext2", SEQ_LEN, max_windows=WINDOWS, batch_size=BATCH,
                            data_dir=data_dir, progress=False)

    def bare():
        nlls = []
        with torch.inference_mode():
            for i in range(0, windows.shape[0], BATCH):
                batch = windows[i:i + BATCH]
                logits = model(batch).logits
                nlls.append(F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), batch[:, 1:].flatten(),
                                            reduction="none"))
        return torch.cat(nlls).mean().exp().item()

    def logits_only():
        with torch.inference_mode():
            for i in range(0, windows.shape[0], BATCH):
                model(windows[i:i + BATCH]).logits

    def one_round():
        for name, fn in (("prunebench", prunebench), ("bare", bare), ("logits", logits_only)):
            t0 = time.perf_counter()
            fn()
            _sync(device)
            times[name].append(time.perf_counter() - t0)

    benchmark.group = f"ppl-throughput-{device.type}"
    benchmark.pedantic(one_round, rounds=ROUNDS, warmup_rounds=1)
    med = {k: statistics.median(v[-ROUNDS:]) for k, v in times.items()}
    tokens = windows.numel()
    info = {f"{k}_tokens_per_s": tokens / v for k, v in med.items()}
    info["ratio_vs_bare"] = med["bare"] / med["prunebench"]
    info["ratio_vs_logits_only"] = med["logits"] / med["prunebench"]
    benchmark.extra_info.update(info)
    print(f"\n[{device.type}] prunebench {info['prunebench_tokens_per_s']:.0f} tok/s; "
          f"{info['ratio_vs_bare']:.1%} of the bare ppl loop, {info['ratio_vs_logits_only']:.1%} of logits-only")
    # Same numbers from both: the harness computes the bare loop's perplexity.
    res = perplexity.evaluate(model, tok, "wikitext2", SEQ_LEN, max_windows=WINDOWS, batch_size=BATCH,
                              data_dir=data_dir, progress=False)
    assert res["ppl"] == pytest.approx(bare(), rel=1e-4)
