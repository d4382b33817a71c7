"""What resumable training states cost: size and save time (a script, not a test).

    python tests/benchmarks/bench_train_state.py

1. The nano recipe's loop (131,072 tokens, 4096-token steps, a checkpoint every 16,384 tokens)
   on a model of nano-llama-l5's shape (random weights: the cost does not depend on them), with
   and without ``state_every=1``, twice each, interleaved so a busy machine slows both alike.
2. Two saves of a 135M-parameter Llama (SmolLM2-135M's shape) with a full AdamW state: bytes
   per parameter and seconds per save on this machine's disk, for sizing an 8B run.
"""

from __future__ import annotations

import copy
import tempfile
import time

import torch

from bench.sources.tiny import tiny_model
from bench.training.recipe import Recipe
from bench.training.trainer import train
from bench.training.train_state import Checkpointer, StateStore
from bench.training.engine import SingleProcess

NANO_RECIPE = dict(tokens=131072, checkpoint_every=16384, batch_tokens=4096, micro_batch_tokens=4096, seq_len=128,
                   lr=5e-4, warmup_tokens=16384, eval_windows=64)


def loop_overhead() -> None:
    g = torch.Generator().manual_seed(0)
    win = torch.randint(0, 1024, (2048, 128), generator=g)  # (n, seq_len)
    held = torch.randint(0, 1024, (64, 128), generator=g)
    m0 = tiny_model("llama", vocab_size=1024, hidden_size=64, intermediate_size=192, num_hidden_layers=8,
                    num_attention_heads=4, num_key_value_heads=4, head_dim=16)
    print(f"nano-llama-l5 shape: {sum(p.numel() for p in m0.parameters()):,} params, {torch.get_num_threads()} threads")
    for every in (None, 1, None, 1):
        recipe = Recipe(**NANO_RECIPE, state_every=every)
        with tempfile.TemporaryDirectory() as d:
            state = Checkpointer(StateStore(d, every)) if every else None
            t0 = time.perf_counter()
            train(copy.deepcopy(m0), win, recipe, heldout=held, state=state)
            wall = time.perf_counter() - t0
        rep = state.report if state else {}
        print(f"  state_every={every}: wall {wall:.2f} s, saves {rep.get('saves', 0)}, "
              f"saving {rep.get('save_s', 0.0):.3f} s, {rep.get('bytes') or 0:,} bytes per state")


def save_cost() -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                      num_attention_heads=9, num_key_value_heads=3, tie_word_embeddings=True)
    model = LlamaForCausalLM(cfg)
    n = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()  # AdamW's moments exist, as after any real step
    with tempfile.TemporaryDirectory() as d:
        store = StateStore(d, 1)
        for step in (1, 2):
            t0 = time.perf_counter()
            SingleProcess().write_weights(model, opt, store.begin(step))
            final = store.commit(step, {})
            dt = time.perf_counter() - t0
            size = sum(f.stat().st_size for f in final.rglob("*") if f.is_file())
            print(f"135M shape ({n:,} params): save {dt:.2f} s, {size / 1e9:.2f} GB ({size / n:.1f} B/param), "
                  f"{size / 1e9 / dt:.2f} GB/s")


if __name__ == "__main__":
    loop_overhead()
    save_cost()
