"""Perplexity throughput and peak memory against bare loops over the same model, windows and batches.

The issue's bars: prunebench's evaluation reaches >= 90% of the tokens/s of a logits-only
forward loop on CPU, with peak memory that does not grow with vocabulary x sequence. The
model is a small Llama with SmolLM2's 49k vocabulary, so the LM head dominates as in a real LLM.

pytest-benchmark times prunebench's `evaluate` call itself (its row in the table is the
harness). Before each round, the `setup` hook runs and times the two baselines, so machine
noise hits all three alike:

* ``bare``: the minimal hand-written perplexity loop (LLM-Pruner's: model call, shifted
  cross-entropy, mean), the same work without the harness;
* ``logits``: the model calls alone, no loss at all.

The ratios (median baseline time / median prunebench time of the same run) and the peak memory
of each loop go into the benchmark's ``extra_info`` (see ``--benchmark-json``) and are printed.
This is a benchmark, not a timed assert: it reports instead of failing on a busy machine.

    OMP_NUM_THREADS=1 pytest tests/benchmarks/bench_perplexity_speed.py -p no:cacheprovider -s
"""

from __future__ import annotations

import re
import statistics
import time

import pytest
import torch
import torch.nn.functional as F

from bench.sources import data

from bench.evaluation import perplexity
from bench.sources.tiny import byte_tokenizer, tiny_model

SEQ_LEN, WINDOWS, BATCH, ROUNDS = 128, 16, 8, 5
VOCAB = 49152  # SmolLM2's
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        return int(re.search(rf"{field}:\s+(\d+)", fh.read()).group(1))


def peak_bytes(fn, device: torch.device) -> int | None:
    """Peak memory `fn` adds on `device`: CUDA allocator peak, or the process's peak RSS on Linux.

    On CPU the kernel's high-water mark (VmHWM) is reset through /proc/self/clear_refs first;
    None where that interface does not exist.
    """
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # reset the peak RSS to the current RSS
        base = _rss_kib("VmRSS")
    except OSError:
        return None
    fn()
    return (_rss_kib("VmHWM") - base) * 1024


@pytest.fixture(scope="module", params=DEVICES)
def setup(request, data_dir):
    device = torch.device(request.param)
    model = tiny_model("llama", vocab_size=VOCAB, hidden_size=256, intermediate_size=768,
                       num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2, head_dim=64)
    model.to(device=device, dtype=torch.bfloat16 if device.type == "cuda" else torch.float32).eval()
    tok = byte_tokenizer()
    stream = perplexity.encode_stream(tok, data.joined_text("wikitext2", "test", data_dir))
    n = stream.numel() // SEQ_LEN
    windows = perplexity.make_windows(stream, SEQ_LEN)[perplexity.select_windows(n, WINDOWS)].to(device)
    return model, tok, windows, device


def test_ppl_throughput_vs_bare_loops(benchmark, setup, data_dir):
    model, tok, windows, device = setup

    def prunebench():
        res = perplexity.evaluate(model, tok, "wikitext2", SEQ_LEN, max_windows=WINDOWS, batch_size=BATCH,
                                  data_dir=data_dir)
        _sync(device)
        return res

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
        _sync(device)

    baselines = {"bare": bare, "logits": logits_only}
    times = {name: [] for name in baselines}

    def time_baselines():  # pytest-benchmark's setup hook: runs before every round, untimed by it
        for name, fn in baselines.items():
            t0 = time.perf_counter()
            fn()
            _sync(device)
            times[name].append(time.perf_counter() - t0)

    benchmark.group = f"ppl-throughput-{device.type}"
    result = benchmark.pedantic(prunebench, setup=time_baselines, rounds=ROUNDS, warmup_rounds=1)
    # Same numbers from both: the harness computes the bare loop's perplexity.
    assert result["ppl"] == pytest.approx(bare(), rel=1e-4)
    info = {f"peak_bytes_{name}": peak_bytes(fn, device)
            for name, fn in (("prunebench", prunebench), ("bare", bare), ("logits", logits_only))}
    info["logits_bytes_per_batch"] = BATCH * SEQ_LEN * VOCAB * 4
    if benchmark.stats is not None:  # None when benchmarks are disabled (e.g. under xdist)
        tokens = windows.numel()
        med = {"prunebench": benchmark.stats.stats.median,
               **{k: statistics.median(v[-ROUNDS:]) for k, v in times.items()}}
        info.update({f"{k}_tokens_per_s": tokens / v for k, v in med.items()})
        info["ratio_vs_bare"] = med["bare"] / med["prunebench"]
        info["ratio_vs_logits_only"] = med["logits"] / med["prunebench"]
        print(f"\n[{device.type}] prunebench {info['prunebench_tokens_per_s']:.0f} tok/s; "
              f"{info['ratio_vs_bare']:.1%} of the bare ppl loop, {info['ratio_vs_logits_only']:.1%} of logits-only")
    benchmark.extra_info.update(info)
    mib = {k: (v / 2**20 if v is not None else None) for k, v in info.items() if k.startswith("peak_bytes")}
    print(f"[{device.type}] peak MiB: " + ", ".join(f"{k[11:]} {v:.0f}" if v is not None else f"{k[11:]} n/a"
                                                  for k, v in mib.items()))
