"""Perplexity with the LLM-Pruner protocol (DESIGN.md section 3), exactly.

1. Rows of the evaluation split (WikiText2 test, PTB validation) are joined with ``"\\n\\n"``.
2. The joined text is tokenised once with the model's tokenizer and its default special
   tokens, so the stream has one BOS at its very start (if the tokenizer adds one) and none
   per window.
3. The stream is cut into non-overlapping windows of ``seq_len`` tokens; the last partial
   window is dropped.
4. Loss is the cross-entropy of ``logits[:, :-1]`` against ``ids[:, 1:]``, averaged over every
   predicted token of every window; ppl = exp(mean). No attention mask and no padding, so the
   batch size cannot change the result.

``max_windows`` evaluates an evenly spaced subset of the windows (always including the first)
for quick runs; the subset rule and size are recorded with the number.
"""

from __future__ import annotations

import hashlib
import math
import sys
import time

import torch

from bench import data as data_mod
from bench.errors import UsageError
from bench.models import max_positions

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


def make_windows(ids: torch.Tensor, seq_len: int) -> torch.Tensor:
    """Non-overlapping windows, the last partial one dropped. (T,) -> (n, seq_len)."""
    if seq_len < 2:
        raise UsageError(f"seq_len must be at least 2 to predict any token, got {seq_len}")
    n = ids.numel() // seq_len
    if n == 0:
        raise UsageError(
            f"the text has {ids.numel()} tokens, shorter than one window of {seq_len}; "
            f"use a smaller --seq-len")
    return ids[: n * seq_len].view(n, seq_len)


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


def token_nll(logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """NLL of each next token: (B, S, V) logits and (B, S) ids -> (B, S-1), in float32.

    Equal to ``cross_entropy(logits[:, :-1], ids[:, 1:])`` per token, computed as
    logsumexp - target logit: this reads the logits once and never materialises the full
    (B, S-1, V) log-softmax or a contiguous copy of the shifted logits, which for a 49k
    vocabulary costs as much memory traffic as the lm_head itself. bf16/fp16 logits are
    upcast so the normaliser keeps float32 precision.
    """
    if logits.dtype != torch.float32:
        logits = logits.float()
    lse = torch.logsumexp(logits[:, :-1], dim=-1)  # (B, S-1)
    target = logits[:, :-1].gather(-1, ids[:, 1:, None]).squeeze(-1)  # (B, S-1)
    return lse - target


@torch.inference_mode()
def window_nll_sum(model, windows: torch.Tensor, batch_size: int, progress: bool = False,
                   desc: str = "ppl") -> tuple[float, int]:
    """Sum of token NLLs over all windows, and the number of predicted tokens.

    Args:
        windows: (n, seq_len) token ids on any device.
    """
    from tqdm.auto import tqdm

    device = _model_device(model)
    total = torch.zeros((), dtype=torch.float64, device=device)
    n, seq_len = windows.shape
    bar = tqdm(total=n, desc=desc, unit="win", file=sys.stderr, disable=not progress, leave=False)
    for start in range(0, n, batch_size):
        batch = windows[start:start + batch_size].to(device, non_blocking=True)  # (B, S)
        logits = model(input_ids=batch, use_cache=False).logits  # (B, S, V)
        total += token_nll(logits, batch).sum()
        bar.update(batch.shape[0])
    bar.close()
    return float(total), n * (seq_len - 1)


def evaluate(model, tokenizer, dataset: str, seq_len: int, *, split: str | None = None,
             max_windows: int | None = None, batch_size: int | None = None, data_dir=None,
             progress: bool = True) -> dict:
    """Perplexity of `model` on `dataset` with the LLM-Pruner protocol.

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
                                       desc=f"{dataset}:{seq_len}")
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
