"""Perplexity with the LLM-Pruner protocol (DESIGN.md section 3), exactly.

1. Rows of the evaluation split (WikiText2 test, PTB validation) are joined with ``"\\n\\n"``.
2. The joined text is tokenised once with the model's tokenizer and its default special
   tokens, so the stream has one BOS at its very start (if the tokenizer adds one) and none
   per window.
3. The stream is cut into non-overlapping windows of ``seq_len`` tokens; the last partial
   window is dropped.
4. Loss is the cross-entropy of ``logits[:, :-1]`` against ``ids[:, 1:]``, averaged over every
   predicted token of every window; ppl = exp(mean). No attention mask and no padding, so the
   batch size cannot change the result. The logits are never held whole: the loss is taken
   from the final hidden states through the LM head in chunks of positions (`chunked_nll_sum`),
   float32 per chunk.

``max_windows`` evaluates an evenly spaced subset of the windows (always including the first)
for quick runs; the subset rule and size are recorded with the number.
"""

from __future__ import annotations

import functools
import hashlib
import math
import time

import torch
import torch.nn.functional as F

from bench.errors import UsageError
from bench.progress import QUIET, Progress
from bench.sources import data as data_mod
from bench.sources.models import max_positions

PROTOCOL = "llm-pruner"
DEFAULT_BATCH_TOKENS = 4096  # windows per batch = max(1, this // seq_len)


def default_batch_size(seq_len: int) -> int:
    return max(1, DEFAULT_BATCH_TOKENS // seq_len)


_TOKENIZER_KEYS: dict[int, tuple[object, str]] = {}


def tokenizer_key(tokenizer) -> str:
    """A stable identity for a tokenizer, so cached token streams are never mixed up.

    Serialising a 49k-vocabulary tokenizer takes tens of milliseconds, so the key is
    memoised per tokenizer object (the object is kept alive so its id cannot be reused).
    """
    hit = _TOKENIZER_KEYS.get(id(tokenizer))
    if hit is not None and hit[0] is tokenizer:
        return hit[1]
    try:
        blob = tokenizer.backend_tokenizer.to_str()
    except AttributeError:  # slow tokenizers
        blob = repr(sorted(tokenizer.get_vocab().items()))
    key = hashlib.sha256(blob.encode()).hexdigest()[:16]
    _TOKENIZER_KEYS[id(tokenizer)] = (tokenizer, key)
    return key


_STREAMS: dict[tuple[str, str], torch.Tensor] = {}


def encode_stream(tokenizer, text: str) -> torch.Tensor:
    """Tokenise the whole text once, with the tokenizer's default special tokens. Shape (T,).

    Cached per (tokenizer, text) for the process: a benchmark run evaluates many pruned
    variants of one model on the same two corpora.
    """
    key = (tokenizer_key(tokenizer), hashlib.sha256(text.encode()).hexdigest())
    if key not in _STREAMS:
        if len(_STREAMS) >= 16:
            _STREAMS.pop(next(iter(_STREAMS)))
        _STREAMS[key] = torch.tensor(tokenizer(text)["input_ids"], dtype=torch.long)
    return _STREAMS[key]


def windows(stream: torch.Tensor, seq_len: int) -> torch.Tensor:
    """Non-overlapping windows, the last partial one dropped. (T,) -> (n, seq_len); n may be 0."""
    n = stream.numel() // seq_len
    return stream[: n * seq_len].view(n, seq_len)


def make_windows(ids: torch.Tensor, seq_len: int) -> torch.Tensor:
    """`windows` for the protocol: a seq_len below 2, or a text shorter than one window, is refused."""
    if seq_len < 2:
        raise UsageError(f"seq_len must be at least 2 to predict any token, got {seq_len}")
    if ids.numel() < seq_len:
        raise UsageError(
            f"the text has {ids.numel()} tokens, shorter than one window of {seq_len}; "
            f"use a smaller --seq-len")
    return windows(ids, seq_len)


def select_windows(n: int, max_windows: int | None) -> list[int]:
    """All windows, or `max_windows` evenly spaced ones (first included), in order."""
    if max_windows is None or max_windows >= n:
        return list(range(n))
    if max_windows < 1:
        raise UsageError(f"--max-windows must be at least 1, got {max_windows}")
    step = n / max_windows
    return [int(i * step) for i in range(max_windows)]


def _model_device(model) -> torch.device:
    return next(model.parameters()).device


# Bytes of float32 logits held at once (one tile of positions x vocabulary). Peak memory of the
# loss is this, whatever the vocabulary and sequence length: Llama-3's 128k vocabulary over 8
# windows of 2,048 tokens would otherwise be 8.4 GB. On CPU a tile that stays in cache is what
# makes the loss nearly free next to the lm_head matmul (tests/benchmarks/bench_perplexity_speed.py); on
# CUDA larger tiles keep the matmuls big.
CHUNK_BYTES = {"cpu": 4 << 20, "cuda": 256 << 20}
MIN_VOCAB_TILE = 1024  # columns per tile at least, so each matmul stays efficient


def tile_shape(positions: int, vocab: int, device: torch.device) -> tuple[int, int]:
    """(positions, vocabulary columns) per tile so one tile's float32 logits fit `CHUNK_BYTES`."""
    budget = CHUNK_BYTES.get(device.type, CHUNK_BYTES["cuda"]) // 4  # floats
    rows = max(1, min(positions, budget // min(vocab, MIN_VOCAB_TILE)))
    return rows, max(1, min(vocab, budget // rows))


def is_fsdp(model) -> bool:
    """Whether `model` is an FSDP2-sharded module (its parameters are gathered inside its forward)."""
    try:
        from torch.distributed.fsdp import FSDPModule
    except ImportError:  # torch without distributed support
        return False
    return isinstance(model, FSDPModule)


@functools.cache
def _plain_head_classes() -> tuple[type, ...]:
    from transformers import LlamaForCausalLM, Qwen2ForCausalLM

    return (LlamaForCausalLM, Qwen2ForCausalLM)  # pruners.hf_modeling's classes subclass these


def trunk_and_head(model) -> tuple[torch.nn.Module, torch.nn.Module] | None:
    """The decoder trunk and LM head of a model whose logits are exactly ``head(trunk(ids))``.

    Llama and Qwen2 (and prunebench's per-layer-width subclasses, and peft wrappers of them)
    compute ``lm_head(model(ids).last_hidden_state)`` with nothing after the head, so the loss
    can be taken from the hidden states chunk by chunk. Returns None for anything else (an
    architecture with logit soft-capping or scaling, or an FSDP-sharded root whose parameters
    are only gathered inside its own forward); those go through the full-logits path.
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model  # peft
    if not isinstance(base, _plain_head_classes()) or is_fsdp(base):
        return None
    head = base.get_output_embeddings()
    if not isinstance(head, torch.nn.Linear):
        return None
    return base.get_decoder(), head


def chunked_nll_sum(hidden: torch.Tensor, head: torch.nn.Linear, ids: torch.Tensor,
                    tile: tuple[int, int] | None = None) -> torch.Tensor:
    """Sum of next-token NLLs from final hidden states, never holding more than one tile of logits.

    Positions are taken in chunks; within a chunk the vocabulary is swept in column tiles whose
    log-sum-exps are combined at the end, so each lm_head weight tile is read once per position
    chunk (tiling positions alone re-reads the whole head per chunk and was slower than the
    full-logits loop). Each tile's logits are upcast to float32 before the normaliser, as the
    full-logits path does, so the two agree to float32 rounding.

    Args:
        hidden: (B, S, H) final (normed) hidden states.
        head: the LM head (a Linear, bias or not; tied or not).
        ids: (B, S) token ids; position t predicts ids[:, t + 1].
        tile: (positions, vocabulary columns) per tile (default: `tile_shape`).
    Returns:
        A float64 scalar on the head's device.
    """
    weight, bias = head.weight, head.bias  # (V, H), (V,) or None
    if weight.device.type == "meta":  # offloaded by accelerate: its hook loads it per call
        return _module_chunked_nll_sum(hidden, head, ids)
    h = hidden[:, :-1].reshape(-1, hidden.shape[-1]).to(weight.device)  # (N, H): a small copy, H << V
    targets = ids[:, 1:].reshape(-1).to(weight.device)  # (N,)
    n, vocab = h.shape[0], weight.shape[0]
    rows, cols = tile or tile_shape(n, vocab, weight.device)
    parts = []
    for i in range(0, n, rows):
        hp, tp = h[i:i + rows], targets[i:i + rows]  # (P, H), (P,)
        lse = torch.empty(hp.shape[0], -(-vocab // cols), device=weight.device)  # (P, tiles)
        target = torch.zeros(hp.shape[0], device=weight.device)  # (P,)
        for k, j in enumerate(range(0, vocab, cols)):
            logits = F.linear(hp, weight[j:j + cols], None if bias is None else bias[j:j + cols])  # (P, c)
            if logits.dtype != torch.float32:
                logits = logits.float()
            lse[:, k] = torch.logsumexp(logits, dim=-1)
            local = tp - j
            hit = (local >= 0) & (local < logits.shape[1])
            target += torch.where(hit, logits.gather(-1, local.clamp(0, logits.shape[1] - 1)[:, None]).squeeze(-1), 0.0)
        parts.append((torch.logsumexp(lse, dim=-1) - target).sum(dtype=torch.float64))
    return torch.stack(parts).sum()


def _module_chunked_nll_sum(hidden: torch.Tensor, head: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """Position chunks through the head module itself, for a head whose weights live elsewhere."""
    h = hidden[:, :-1].reshape(-1, hidden.shape[-1])
    targets = ids[:, 1:].reshape(-1)
    rows = tile_shape(h.shape[0], head.out_features, hidden.device)[0]
    parts = []
    for i in range(0, h.shape[0], rows):
        logits = head(h[i:i + rows]).float()  # (c, V)
        t = targets[i:i + rows].to(logits.device)
        parts.append((torch.logsumexp(logits, dim=-1) - logits.gather(-1, t[:, None]).squeeze(-1)).sum(dtype=torch.float64))
    return torch.stack([p.to(parts[0].device) for p in parts]).sum()


def token_nll(logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """NLL of each next token: (B, S, V) logits and (B, S) ids -> (B, S-1), in float32.

    The full-logits path, for models `trunk_and_head` cannot split. Equal to
    ``cross_entropy(logits[:, :-1], ids[:, 1:])`` per token, computed as logsumexp - target
    logit so the (B, S-1, V) log-softmax is never materialised; bf16/fp16 logits are upcast
    so the normaliser keeps float32 precision.
    """
    if logits.dtype != torch.float32:
        logits = logits.float()
    lse = torch.logsumexp(logits[:, :-1], dim=-1)  # (B, S-1)
    target = logits[:, :-1].gather(-1, ids[:, 1:, None]).squeeze(-1)  # (B, S-1)
    return lse - target


def batch_nll_sum(model, batch: torch.Tensor, chunked: bool = True) -> torch.Tensor:
    """Sum of next-token NLLs of one (B, S) batch, as a float64 scalar; no attention mask.

    The one loss function of prunebench: perplexity, the held-out loss at every post-training
    checkpoint and L0 all go through it. ``chunked=False`` forces the full-logits path (the
    reference the chunked one is tested against).
    """
    split = trunk_and_head(model) if chunked else None
    if split is None:
        logits = model(input_ids=batch, use_cache=False).logits  # (B, S, V)
        return token_nll(logits, batch.to(logits.device)).sum(dtype=torch.float64)
    trunk, head = split
    hidden = trunk(input_ids=batch, use_cache=False).last_hidden_state  # (B, S, H)
    return chunked_nll_sum(hidden, head, batch)


def window_nll_sum(model, windows: torch.Tensor, batch_size: int, progress: Progress = QUIET,
                   desc: str = "ppl", chunked: bool = True) -> tuple[float, int]:
    """Sum of token NLLs over all windows, and the number of predicted tokens.

    Args:
        windows: (n, seq_len) token ids on any device.
        progress: where the phase `desc` shows (windows done).
        chunked: compute the loss from hidden states in chunks (`batch_nll_sum`).
    """
    # FSDP writes gathered parameters into tensors it reuses, which inference mode forbids.
    with torch.no_grad() if is_fsdp(model) else torch.inference_mode():
        return _window_nll_sum(model, windows, batch_size, progress, desc, chunked)


def _window_nll_sum(model, windows, batch_size, progress, desc, chunked) -> tuple[float, int]:
    device = _model_device(model)
    parts = []
    n, seq_len = windows.shape
    with progress.phase(desc, n, "windows") as bar:
        for start in range(0, n, batch_size):
            batch = windows[start:start + batch_size].to(device, non_blocking=True)  # (B, S)
            parts.append(batch_nll_sum(model, batch, chunked=chunked))
            bar.advance(batch.shape[0])
    # One host sync for the whole evaluation.
    return float(torch.stack([p.to(parts[0].device) for p in parts]).sum()), n * (seq_len - 1)


def evaluate(model, tokenizer, dataset: str, seq_len: int, *, split: str | None = None,
             max_windows: int | None = None, batch_size: int | None = None, data_dir=None,
             progress: Progress = QUIET, desc: str | None = None) -> dict:
    """Perplexity of `model` on `dataset` with the LLM-Pruner protocol.

    Args:
        data_dir: the local data directory as the run was given it (None: the default lookup,
            `bench.sources.data.resolve_data_dir`).
        progress: where the evaluation shows as phase `desc` (default ``<dataset>:<seq_len>``).

    Returns:
        A record: ``ppl``, ``nll`` (mean per predicted token), ``tokens`` (predicted tokens),
        ``windows``, and every protocol field needed to reproduce the number.
    """
    split = split or data_mod.EVAL_SPLIT.get(dataset)
    if split is None:
        raise UsageError(f"unknown evaluation dataset {dataset!r}; choose one of {', '.join(data_mod.EVAL_SPLIT)}")
    data_mod.get_source(dataset, split)  # validates before any heavy work
    if seq_len < 2:
        raise UsageError(f"seq_len must be at least 2 to predict any token, got {seq_len}")
    limit = max_positions(model)
    if limit is not None and seq_len > limit:
        raise UsageError(f"seq_len {seq_len} exceeds the model's maximum positions ({limit}); use --seq-len {limit} or less")
    batch_size = batch_size or default_batch_size(seq_len)
    if batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {batch_size}")

    text = data_mod.joined_text(dataset, split, data_dir)
    stream = encode_stream(tokenizer, text)
    windows = make_windows(stream, seq_len)
    chosen = select_windows(windows.shape[0], max_windows)
    subset = windows[chosen]

    was_training = model.training
    model.eval()
    t0 = time.perf_counter()
    nll_sum, n_tokens = window_nll_sum(model, subset, batch_size, progress=progress,
                                       desc=desc or f"{dataset}:{seq_len}")
    wall = time.perf_counter() - t0
    model.train(was_training)

    mean_nll = nll_sum / n_tokens
    param = next(model.parameters())
    bos = getattr(tokenizer, "bos_token_id", None)
    return {
        "ppl": math.exp(mean_nll),
        "nll": mean_nll,
        "tokens": n_tokens,
        "windows": len(chosen),
        "windows_total": int(windows.shape[0]),
        "seq_len": seq_len,
        "dataset": dataset,
        "split": split,
        "protocol": PROTOCOL,
        "join": "\\n\\n",
        "stream_tokens": int(stream.numel()),
        "bos_at_start": bool(bos is not None and stream.numel() > 0 and int(stream[0]) == bos),
        "max_windows": max_windows,
        "window_selection": "all" if len(chosen) == windows.shape[0] else "evenly-spaced",
        "batch_size": batch_size,
        "dtype": str(param.dtype).replace("torch.", ""),
        "device": str(param.device),
        "data": data_mod.data_identity(dataset, split, data_dir),
        "wall_s": wall,
        "tokens_per_s": subset.numel() / wall if wall > 0 else None,
    }
