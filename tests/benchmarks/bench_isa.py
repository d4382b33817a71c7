"""The cost of the pinned CPU ISA: training steps under the pin against the CPU's native ISA.

The same post-training loop (`bench.training.trainer.train`, a nano-l3-shaped Llama, 8 steps of
4096 tokens) runs in fresh processes, one with prunebench's pin (`bench.isa`: AVX2 kernels in
ATen, MKL's GEMMs in strict reproducible mode) and one with ``PRUNEBENCH_CPU_ISA=native``,
alternating round by round so a busy machine slows both alike:

    pytest tests/benchmarks/bench_isa.py -s

The ratio of the medians (pinned over native time per token) goes into ``extra_info``, with
the capability ATen reported in each process. On a CPU without AVX-512 both run the same
kernels but for MKL's strict mode.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys

import pytest

STEPS, SEQ, BATCH_SEQS = 8, 128, 32
TOKENS = STEPS * SEQ * BATCH_SEQS

TRAIN = r"""
import json, sys, time
from bench import isa
isa.pin()
import torch
from transformers import AutoModelForCausalLM, LlamaConfig
from bench.training.recipe import Recipe
from bench.training.trainer import train

config = LlamaConfig(vocab_size=1024, hidden_size=32, intermediate_size=96, num_hidden_layers=8, num_attention_heads=2,
                     num_key_value_heads=2, head_dim=16, max_position_embeddings=512, tie_word_embeddings=True)
torch.manual_seed(0)
model = AutoModelForCausalLM.from_config(config)
g = torch.Generator().manual_seed(0)
windows = torch.randint(0, 1024, (%(n)d, %(seq)d), generator=g)
recipe = Recipe(tokens=%(tokens)d, checkpoint_every=%(tokens)d, batch_tokens=%(batch)d, micro_batch_tokens=%(batch)d,
                seq_len=%(seq)d, lr=5e-4, eval_windows=1)
train(model, windows[:%(batch_seqs)d], Recipe(tokens=%(batch)d, checkpoint_every=%(batch)d, batch_tokens=%(batch)d,
      micro_batch_tokens=%(batch)d, seq_len=%(seq)d, lr=5e-4, eval_windows=1))  # warm-up step
t0 = time.perf_counter()
train(model, windows, recipe)
print(json.dumps({"seconds": time.perf_counter() - t0, "capability": torch.backends.cpu.get_cpu_capability(),
                  "threads": torch.get_num_threads()}))
""" % dict(n=STEPS * BATCH_SEQS, seq=SEQ, tokens=TOKENS, batch=SEQ * BATCH_SEQS, batch_seqs=BATCH_SEQS)

KNOBS = ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "MKL_ENABLE_INSTRUCTIONS", "ONEDNN_MAX_CPU_ISA", "PRUNEBENCH_CPU_ISA")


def _round(native: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in KNOBS}
    if native:
        env["PRUNEBENCH_CPU_ISA"] = "native"
    out = subprocess.run([sys.executable, "-c", TRAIN], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.benchmark(group="isa-pin")
def test_pinned_against_native_training(benchmark):
    rounds = 3
    pinned, native = [], []

    def pinned_round():
        pinned.append(_round(native=False))

    def time_native():
        native.append(_round(native=True))
        return (), {}

    benchmark.pedantic(pinned_round, setup=time_native, rounds=rounds, iterations=1)
    # pytest-benchmark times the whole child process (start-up included); the ratio is the loop's own.
    pinned_s = statistics.median(r["seconds"] for r in pinned)
    native_s = statistics.median(r["seconds"] for r in native)
    assert pinned[-1]["capability"] == "AVX2"
    benchmark.extra_info.update({"pinned_tokens_per_s": round(TOKENS / pinned_s), "native_tokens_per_s":
                                 round(TOKENS / native_s), "pinned_over_native": round(pinned_s / native_s, 4),
                                 "native_capability": native[-1]["capability"], "threads": native[-1]["threads"]})
    print(f"\npinned {TOKENS / pinned_s:.0f} tok/s ({pinned[-1]['capability']}) vs native {TOKENS / native_s:.0f} "
          f"tok/s ({native[-1]['capability']}): pinned/native time {pinned_s / native_s:.3f}")
