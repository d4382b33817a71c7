"""The GPU check: bf16 perplexity, 2:4 kernels and bf16 post-training, each against a bare baseline.

Run on one H100/H200 (under 10 minutes):

    PRUNEBENCH_DATA_DIR=/path/to/shared/data pytest tests/cuda -p no:cacheprovider

Every test here is marked ``cuda`` and skipped, with the reason, where no CUDA device exists
(`conftest.py`). Correctness is asserted (bf16 perplexity within 0.5% of float32; L0 equal to a
zero-learning-rate checkpoint under bf16 autocast). Speed is reported, never asserted: each
figure is a ratio against a baseline timed in the same run (pytest-benchmark times prunebench's
call, the baseline runs in its setup hook before every round), with the issue's target and
whether it was met, in the table printed at the end and written to `gpu_check.report_path()`.
"""

from __future__ import annotations

from bench.env import RunEnv

import copy

import pytest
import torch

import gpu_check as gc
from bench.evaluation import perplexity
from bench.errors import UsageError
from bench.sources.tiny import tiny_model

DEVICE = "cuda"  # a module constant so the check's code can be dry-run elsewhere
PPL_SEQ = 2048
PPL_WINDOWS = 32
PREFILL_TOKENS = 4096

SMOLLM2_SHAPE = dict(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_attention_heads=9,
                     num_key_value_heads=3, head_dim=64, max_position_embeddings=8192, tie_word_embeddings=True,
                     rope_theta=100000.0)
LLAMA_8B_SHAPE = dict(vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_attention_heads=32,
                      num_key_value_heads=8, head_dim=128, max_position_embeddings=8192)
LLAMA_1B_SHAPE = dict(vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                      num_attention_heads=32, num_key_value_heads=8, head_dim=64, max_position_embeddings=8192,
                      tie_word_embeddings=True, rope_theta=500000.0)


def _cuda_model(layers: int | None = None, **shape):
    """A random Llama of the given shape, initialised directly on the GPU."""
    if layers is not None:
        shape = dict(shape, num_hidden_layers=layers)
    with torch.device(DEVICE):
        return tiny_model("llama", bos_token_id=None, eos_token_id=None, pad_token_id=None, **shape)


@pytest.fixture(scope="module")
def smollm2():
    """SmolLM2-135M-Instruct in bf16 on the GPU (skips the rows that need real weights without it)."""
    from bench.sources.models import load_model

    try:
        loaded = load_model("smollm2-135m", RunEnv.make(device=DEVICE), dtype="bf16")
    except UsageError as exc:
        pytest.skip(f"SmolLM2 is not available here: {exc}")
    yield loaded
    del loaded
    torch.cuda.empty_cache()


# ----------------------------------------------------------------------------- perplexity


def test_ppl_bf16_agrees_with_float32(smollm2, data_dir):
    kw = dict(max_windows=PPL_WINDOWS, data_dir=data_dir)
    bf16, peak_bf16 = gc.peak_bytes(lambda: perplexity.evaluate(smollm2.model, smollm2.tokenizer, "wikitext2",
                                                                PPL_SEQ, **kw))
    fp32_model = copy.deepcopy(smollm2.model).float()
    fp32, peak_fp32 = gc.peak_bytes(lambda: perplexity.evaluate(fp32_model, smollm2.tokenizer, "wikitext2",
                                                                PPL_SEQ, **kw))
    del fp32_model
    rel = abs(bf16["ppl"] - fp32["ppl"]) / fp32["ppl"]
    gc.add_row("ppl bf16 vs fp32", f"SmolLM2-135M, wikitext2 @{PPL_SEQ}, {bf16['windows']} windows",
               prunebench=f"bf16 {bf16['ppl']:.4f}", baseline=f"fp32 {fp32['ppl']:.4f}", ratio=rel, target=0.005,
               higher_is_better=False, peak=f"{gc.gib(peak_bf16)} / {gc.gib(peak_fp32)}",
               notes="ratio = |relative difference|")
    assert rel <= 0.005


def test_ppl_throughput_vs_bare_bf16_forward(benchmark, smollm2, data_dir):
    model, tok = smollm2.model, smollm2.tokenizer
    stream = perplexity.encode_stream(tok, perplexity.data_mod.joined_text("wikitext2", "test", data_dir))
    n = stream.numel() // PPL_SEQ
    windows = perplexity.make_windows(stream, PPL_SEQ)[perplexity.select_windows(n, PPL_WINDOWS)].to(DEVICE)
    batch = perplexity.default_batch_size(PPL_SEQ)

    def prunebench():
        return perplexity.evaluate(model, tok, "wikitext2", PPL_SEQ, max_windows=PPL_WINDOWS, batch_size=batch,
                                   data_dir=data_dir)

    def bare_forward():
        with torch.inference_mode():
            for i in range(0, windows.shape[0], batch):
                model(windows[i:i + batch]).logits

    t_pb, t_bare, _ = gc.time_pair(benchmark, prunebench, bare_forward)
    _, peak_pb = gc.peak_bytes(prunebench)
    _, peak_bare = gc.peak_bytes(bare_forward)
    tokens = windows.numel()
    info = {"peak_bytes_prunebench": peak_pb, "peak_bytes_bare": peak_bare, "bare_tokens_per_s": tokens / t_bare}
    if t_pb is not None:
        info.update(prunebench_tokens_per_s=tokens / t_pb, ratio=t_bare / t_pb)
    benchmark.extra_info.update(info)
    gc.add_row("ppl throughput", f"SmolLM2-135M bf16, {windows.shape[0]} x {PPL_SEQ} tokens, batch {batch}",
               prunebench=f"{tokens / t_pb:,.0f} tok/s" if t_pb else "", baseline=f"{tokens / t_bare:,.0f} tok/s",
               ratio=info.get("ratio"), target=0.95, peak=f"{gc.gib(peak_pb)} / {gc.gib(peak_bare)}",
               notes="baseline: bare bf16 forward loop (logits only)")


def test_l0_equals_a_zero_lr_checkpoint_under_bf16_autocast(data_dir):
    """Issue 9 item 5 on CUDA: a bf16 base, fp32 master weights under bf16 autocast, one numeric path."""
    from bench.sources.tiny import byte_tokenizer
    from bench.training.recipe import Recipe
    from bench.training.posttrain import initial_loss, posttrain

    base = tiny_model("llama", seed=3).to(device=DEVICE, dtype=torch.bfloat16)
    r = Recipe(tokens=1024, checkpoint_every=512, batch_tokens=512, micro_batch_tokens=256, seq_len=64, lr=0.0,
               eval_windows=8, bf16=True, max_documents=200)
    l0 = initial_loss(base, byte_tokenizer(), r, RunEnv.make(data_dir=data_dir))
    _, pt = posttrain(copy.deepcopy(base), byte_tokenizer(), r, RunEnv.make(data_dir=data_dir))
    first = pt["trajectory"][0]["val_loss"]
    gc.add_row("L0 = zero-lr checkpoint", "tiny Llama, bf16 base, bf16 autocast", prunebench=f"{first:.6f}",
               baseline=f"L0 {l0:.6f}", ratio=abs(first - l0), target=0.0, higher_is_better=False,
               notes="must be exactly equal")
    assert first == l0


# ----------------------------------------------------------------------------- 2:4


def _two_four(model):
    from bench.registry import make_config
    from pruners.registry import prune

    prune(model, None, make_config("nm", n=2, m=4, nm_method="magnitude"))
    return model


BACKENDS = ("cutlass", "cusparselt")


def _use_backend(backend: str):
    """Select the semi-structured kernel family; returns the tensor class that will be used."""
    from torch.sparse import SparseSemiStructuredTensor

    if backend == "cusparselt" and not torch.backends.cusparselt.is_available():
        pytest.skip("cuSPARSELt is not available in this torch build")
    SparseSemiStructuredTensor._FORCE_CUTLASS = backend == "cutlass"


@pytest.fixture
def backend(request):
    from torch.sparse import SparseSemiStructuredTensor

    before = SparseSemiStructuredTensor._FORCE_CUTLASS
    _use_backend(request.param)
    yield request.param
    SparseSemiStructuredTensor._FORCE_CUTLASS = before


def _backend_class(weight: torch.Tensor) -> str:
    from torch.sparse import to_sparse_semi_structured

    return type(to_sparse_semi_structured(weight.detach())).__name__


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
@pytest.mark.parametrize("shape", ["llama-8b", "smollm2-135m"])
def test_two_four_linears_dense_vs_semi_structured(benchmark, shape, backend):
    from pruners.nm import semi_structured_speedup

    dims = LLAMA_8B_SHAPE if shape == "llama-8b" else SMOLLM2_SHAPE
    model = _two_four(_cuda_model(layers=1, **dims).to(torch.bfloat16))
    ran = _backend_class(model.model.layers[0].mlp.up_proj.weight)
    result, peak = gc.peak_bytes(lambda: benchmark.pedantic(semi_structured_speedup, args=(model,),
                                                            kwargs={"tokens": PREFILL_TOKENS}, rounds=1))
    benchmark.extra_info.update({"backend_class": ran, **{k: v for k, v in result.items() if k != "shapes"}})
    if "skipped" in result:
        gc.add_row("2:4 Linear", f"{shape} layer 0, {PREFILL_TOKENS} tokens, {backend}", notes=result["skipped"])
        return
    per = ", ".join(f"{name.split('.')[-1]} {v['speedup']:.2f}x" if "speedup" in v else f"{name}: skipped"
                    for name, v in result["shapes"].items())
    dense_ms = sum(v.get("dense_ms", 0) for v in result["shapes"].values())
    sparse_ms = sum(v.get("sparse_ms", 0) for v in result["shapes"].values())
    gc.add_row("2:4 Linear", f"{shape} layer 0 Linears, {PREFILL_TOKENS} tokens, bf16", prunebench=f"{sparse_ms:.3f} ms",
               baseline=f"dense {dense_ms:.3f} ms", ratio=result["speedup"],
               target=1.3 if shape == "llama-8b" else None, peak=gc.gib(peak), notes=f"{ran}; {per}")


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
def test_two_four_prefill_end_to_end(benchmark, backend):
    """The whole model's prefill with every decoder Linear semi-structured, against the same model dense."""
    from torch.sparse import to_sparse_semi_structured

    dense = _two_four(_cuda_model(layers=30, **SMOLLM2_SHAPE).to(torch.bfloat16)).eval()
    sparse = copy.deepcopy(dense)
    for layer in sparse.model.layers:
        for mod in list(layer.modules()):
            if isinstance(mod, torch.nn.Linear):
                mod.weight = torch.nn.Parameter(to_sparse_semi_structured(mod.weight.detach()), requires_grad=False)
    ran = type(sparse.model.layers[0].mlp.up_proj.weight).__name__
    ids = torch.randint(0, SMOLLM2_SHAPE["vocab_size"], (2, PREFILL_TOKENS // 2), device=DEVICE)

    def run(model):
        with torch.inference_mode():
            return model(input_ids=ids, use_cache=False, logits_to_keep=1).logits

    t_sparse, t_dense, _ = gc.time_pair(benchmark, lambda: run(sparse), lambda: run(dense), rounds=10)
    _, peak_sparse = gc.peak_bytes(lambda: run(sparse))
    _, peak_dense = gc.peak_bytes(lambda: run(dense))
    ratio = t_dense / t_sparse if t_sparse else None
    benchmark.extra_info.update({"backend_class": ran, "speedup": ratio, "dense_s": t_dense})
    gc.add_row("2:4 prefill", f"SmolLM2-135M shape (30 layers), 2 x {PREFILL_TOKENS // 2} tokens, bf16",
               prunebench=f"{t_sparse * 1e3:.2f} ms" if t_sparse else "", baseline=f"dense {t_dense * 1e3:.2f} ms",
               ratio=ratio, peak=f"{gc.gib(peak_sparse)} / {gc.gib(peak_dense)}",
               notes=f"{ran}; ratio = dense / 2:4 time; lm_head dense")


# ----------------------------------------------------------------------------- post-training


def _bare_adamw(model, windows, recipe, steps: int) -> None:
    """The baseline: AdamW on float32 master weights under bf16 autocast; forward, backward, step."""
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, betas=(recipe.beta1, recipe.beta2),
                            weight_decay=recipe.weight_decay)
    mb = recipe.micro_batch_tokens // recipe.seq_len
    accum = recipe.accumulation
    for s in range(steps):
        for k in range(accum):
            x = windows[(s * accum + k) * mb:(s * accum + k + 1) * mb]
            with torch.autocast(DEVICE, dtype=torch.bfloat16):
                loss = model(input_ids=x, labels=x, use_cache=False).loss
            (loss / accum).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)


@pytest.mark.parametrize("shape", ["smollm2-135m", "llama-1b"])
def test_posttrain_throughput_and_mfu_vs_bare_adamw(benchmark, shape):
    from bench.training.recipe import Recipe
    from bench.training.trainer import train

    seq, steps = 2048, 6
    if shape == "llama-1b":
        model, micro = _cuda_model(**LLAMA_1B_SHAPE), 8192
    else:
        model, micro = _cuda_model(layers=30, **SMOLLM2_SHAPE), 16384
    model.float()  # float32 master weights, as posttrain holds them
    batch = 16384
    recipe = Recipe(tokens=steps * batch, checkpoint_every=steps * batch, batch_tokens=batch,
                    micro_batch_tokens=micro, seq_len=seq, lr=2e-5, weight_decay=0.1, bf16=True, eval_windows=1)
    vocab = model.config.vocab_size
    windows = torch.randint(0, vocab, (steps * batch // seq, seq), generator=torch.Generator().manual_seed(0)).to(DEVICE)

    def prunebench():
        return train(model, windows, recipe)

    def bare():
        _bare_adamw(model, windows, recipe, steps)

    t_pb, t_bare, res = gc.time_pair(benchmark, prunebench, bare, rounds=3)
    assert res.tokens == recipe.tokens and not res.diverged
    _, peak_pb = gc.peak_bytes(prunebench)
    _, peak_bare = gc.peak_bytes(bare)
    tokens = recipe.tokens
    flops = gc.train_flops_per_token(model, seq)
    peak = gc.peak_flops()
    tps_pb = tokens / t_pb if t_pb else None
    mfu = tps_pb * flops / peak if (tps_pb and peak) else None
    ratio = t_bare / t_pb if t_pb else None
    benchmark.extra_info.update({"prunebench_tokens_per_s": tps_pb, "bare_tokens_per_s": tokens / t_bare,
                                 "ratio": ratio, "mfu": mfu, "flops_per_token": flops, "peak_flops": peak,
                                 "peak_bytes_prunebench": peak_pb, "peak_bytes_bare": peak_bare})
    params = sum(p.numel() for p in model.parameters())
    setting = f"{shape} shape ({params / 1e6:.0f}M params, random), bf16 autocast, {batch} tok/step, seq {seq}"
    gc.add_row("post-training throughput", setting, prunebench=f"{tps_pb:,.0f} tok/s" if tps_pb else "",
               baseline=f"{tokens / t_bare:,.0f} tok/s", ratio=ratio, target=0.9,
               peak=f"{gc.gib(peak_pb)} / {gc.gib(peak_bare)}", notes="baseline: bare AdamW loop")
    gc.add_row("post-training MFU", setting, prunebench=f"{mfu:.1%}" if mfu is not None else "n/a",
               baseline=f"peak {peak / 1e12:.0f} TFLOP/s" if peak else "unknown GPU peak", ratio=mfu,
               target=0.40 if shape == "llama-1b" else None,
               notes=f"{flops / 1e9:.2f} GFLOP/token (fwd+bwd, full attention)")
    del model
    torch.cuda.empty_cache()
