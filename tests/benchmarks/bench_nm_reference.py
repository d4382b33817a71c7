"""Wanda and SparseGPT 2:4 against the reference implementation, same machine, model and data.

The reference is locuslab/wanda's ``lib/prune.py`` (its ``prune_wanda`` and ``prune_sparsegpt``,
the latter SparseGPT's own sweep). Nothing of it is copied here: point the benchmark at a
checkout and it is imported from there::

    git clone https://github.com/locuslab/wanda /tmp/wanda
    PRUNEBENCH_WANDA_REF=/tmp/wanda pytest tests/benchmarks/bench_nm_reference.py -s

Without ``PRUNEBENCH_WANDA_REF`` the module is skipped (CI has no copy of the reference).

Both implementations prune SmolLM2-135M (float32, this machine's device) to 2:4 from the
same calibration ids, ``PRUNEBENCH_NM_REF_SHAPE`` samples x tokens of C4 (default 128x256:
the reference's 128 samples, shorter sequences so that a CPU finishes in minutes). Only the
pruning call is timed. The reference is adapted where it cannot run unmodified here, without
changing what it computes:

* its data loader is replaced by the same calibration ids prunebench uses;
* transformers >= 4.48 decoder layers need ``position_embeddings``, which the reference does
  not pass: each layer computes them from ``position_ids`` with the model's own rotary module;
* on a CPU-only torch, ``torch.cuda.synchronize``/``empty_cache`` become no-ops;
* ``model.seqlen`` and an empty ``hf_device_map`` are set, as its ``main.py`` does.

The test records both wall times, their ratio (prunebench / reference; below 1 is faster) and
both perplexities on WikiText2 and PTB (128-token windows, 64 of each) in pytest-benchmark's
``extra_info``, and prints them. It asserts the 2:4 pattern of both results and that their
perplexities agree within 5%: the two differ only in floating-point summation order, which
on SmolLM2 moved ppl by 0.05-1.6%, while another calibration seed moved it by 0.4-5.5%.
"""

from __future__ import annotations

from bench.env import RunEnv

import contextlib
import io
import os
import sys
import time
import types
from pathlib import Path

import pytest
import torch

REF = os.environ.get("PRUNEBENCH_WANDA_REF")
pytestmark = pytest.mark.skipif(not REF, reason="set PRUNEBENCH_WANDA_REF to a checkout of locuslab/wanda")

EVALS = (("wikitext2", 128), ("ptb", 128))
EVAL_WINDOWS = 64


def _shape() -> tuple[int, int]:
    text = os.environ.get("PRUNEBENCH_NM_REF_SHAPE", "128x256")
    samples, tokens = (int(x) for x in text.lower().split("x"))
    return samples, tokens


def _load(cache):
    from bench.sources.models import load_model

    loaded = load_model("smollm2-135m", RunEnv.make(cache_dir=cache))
    loaded.model.eval()
    return loaded


def _ppl(loaded, data_dir) -> dict:
    from bench.evaluation.perplexity import evaluate

    return {f"{d}:{s}": evaluate(loaded.model, loaded.tokenizer, d, s, max_windows=EVAL_WINDOWS,
                                 data_dir=data_dir)["ppl"] for d, s in EVALS}


def _reference_module():
    """Import the checkout's lib.prune, with the CPU no-ops it needs on a CUDA-less torch."""
    root = Path(REF)
    if not (root / "lib" / "prune.py").is_file():
        pytest.fail(f"PRUNEBENCH_WANDA_REF={REF} has no lib/prune.py; point it at a locuslab/wanda checkout")
    if not torch.cuda.is_available():
        torch.cuda.synchronize = lambda *a, **k: None
        torch.cuda.empty_cache = lambda *a, **k: None
    sys.path.insert(0, str(root))
    import lib.prune as ref

    return ref


def _adapt_for_reference(model, seq_len: int) -> None:
    """Give each decoder layer the rotary embeddings the reference's direct layer calls omit."""
    rotary = model.model.rotary_emb
    for layer in model.model.layers:
        forward = layer.forward

        def with_rope(hidden_states, *args, _forward=forward, **kwargs):
            if kwargs.get("position_embeddings") is None:
                pos = kwargs.get("position_ids")
                if pos is None:
                    pos = torch.arange(hidden_states.shape[1], device=hidden_states.device).unsqueeze(0)
                kwargs["position_embeddings"] = rotary(hidden_states, pos)
            return _forward(hidden_states, *args, **kwargs)

        layer.forward = with_rope
    model.seqlen = seq_len
    model.hf_device_map = {}


@pytest.mark.parametrize("nm_method", ["wanda", "sparsegpt"])
def test_nm_against_reference(nm_method, benchmark, data_dir, tmp_path_factory):
    from bench.sources.calibration import CalibrationSpec, load_calibration
    from pruners.nm import NMConfig, check_pattern
    from pruners.registry import prune

    cache = tmp_path_factory.getbasetemp() / "smollm2-cache"
    samples, seq_len = _shape()
    ref = _reference_module()

    ours = _load(cache)
    cal = load_calibration(ours.tokenizer, CalibrationSpec("c4", samples, seq_len, 0), str(data_dir))
    t0 = time.perf_counter()
    benchmark.pedantic(prune, args=(ours.model, cal, NMConfig(nm_method=nm_method)), rounds=1, iterations=1)
    ours_s = time.perf_counter() - t0

    theirs = _load(cache)
    _adapt_for_reference(theirs.model, seq_len)
    ref.get_loaders = lambda *a, **k: ([(cal.input_ids[i:i + 1], None) for i in range(samples)], None)
    fn = ref.prune_wanda if nm_method == "wanda" else ref.prune_sparsegpt
    args = types.SimpleNamespace(nsamples=samples, seed=0, sparsity_ratio=0.5, use_variant=False)
    device = next(theirs.model.parameters()).device
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # the reference prints a line per Linear
        fn(args, theirs.model, theirs.tokenizer, device, prune_n=2, prune_m=4)
    ref_s = time.perf_counter() - t0

    assert check_pattern(ours.model, 2, 4) == [] and check_pattern(theirs.model, 2, 4) == []
    ppl_ours, ppl_ref = _ppl(ours, data_dir), _ppl(theirs, data_dir)
    info = {"shape": f"{samples}x{seq_len}", "threads": torch.get_num_threads(), "prunebench_s": ours_s,
            "reference_s": ref_s, "time_ratio": ours_s / ref_s, "ppl_prunebench": ppl_ours, "ppl_reference": ppl_ref}
    benchmark.extra_info.update(info)
    print(f"\n{nm_method} 2:4 {info}")
    for key in ppl_ours:
        assert abs(ppl_ours[key] / ppl_ref[key] - 1) < 0.05, (key, ppl_ours[key], ppl_ref[key])
