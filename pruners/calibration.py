"""Calibration samples: N sequences of L tokens cut from documents, seeded.

This module does no file or dataset I/O: it is given the documents. Which corpus they come from
(C4, WikiText-2, a SlimPajama directory) and how they are read is the harness's
(`bench.sources.calibration.load_calibration`, which loads them and calls
`sample_calibration`).

Sampling rule: shuffle the documents with the seed, drop empty ones, tokenize each without
special tokens, join them with the tokenizer's EOS id, and cut the first N x L tokens of that
stream into N rows. Samples never overlap, the result depends only on (documents, N, L, seed,
tokenizer), and asking for more tokens than the documents hold is a `PrunerError` rather than
a silent repeat.

Defaults follow the reference for each method (`default_shape`, declared by each config's
``calibration_shape``): 128 x 2048 for Wanda and SparseGPT, 10 x 64 for LLM-Pruner's Taylor
importance, 128 x 512 for depth and width.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from pruners.errors import PrunerError


@dataclass
class Calibration:
    """Token ids (N, L) plus a record of where they came from."""

    input_ids: torch.Tensor  # (N, L) int64
    info: dict

    @property
    def samples(self) -> int:
        return self.input_ids.shape[0]

    @property
    def seq_len(self) -> int:
        return self.input_ids.shape[1]

    def batches(self, batch_size: int, device=None):
        """Yield (b, L) slices on `device`."""
        for s in range(0, self.samples, batch_size):
            yield self.input_ids[s:s + batch_size].to(device)


def default_shape(method) -> tuple[int, int]:
    """(samples, seq_len) the method's reference implementation uses, as its config declares.

    `method` is a `pruners.registry.Method` (``bench.registry.get_method(name)``) or a config.
    """
    from pruners.registry import Method, method_of

    return (method if isinstance(method, Method) else method_of(method)).calibration_shape


def as_calibration(data) -> Calibration | None:
    """Accept a `Calibration`, a (N, L) LongTensor, or None."""
    if data is None or isinstance(data, Calibration):
        return data
    if isinstance(data, torch.Tensor):
        if data.dim() != 2:
            raise ValueError(f"calibration ids must be (N, L), got shape {tuple(data.shape)}")
        return Calibration(data.long(), {"source": "tensor", "samples": data.shape[0], "seq_len": data.shape[1]})
    raise TypeError(f"calibration must be a Calibration, a (N, L) tensor or None, not {type(data).__name__}")


def require(calibration, what: str) -> Calibration:
    cal = as_calibration(calibration)
    if cal is None:
        raise PrunerError(f"{what} needs calibration data; pass --calibration c4|wikitext2 (and --samples/--seq-len)")
    return cal


def sample_calibration(tokenizer, documents: list[str], samples: int, seq_len: int, seed: int = 0, *,
                       source: str = "documents") -> Calibration:
    """Apply the sampling rule (module docstring) to `documents`, given in source order.

    `source` names the documents in the error for too few tokens and in the returned info.
    """
    docs = [d for d in documents if d and d.strip()]
    order = list(range(len(docs)))
    random.Random(seed).shuffle(order)
    need = samples * seq_len
    eos = getattr(tokenizer, "eos_token_id", None)
    stream: list[int] = []
    used = 0
    chunk = 64
    for s in range(0, len(order), chunk):
        texts = [docs[i] for i in order[s:s + chunk]]
        for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]:
            stream.extend(ids)
            if eos is not None:
                stream.append(eos)
            used += 1
            if len(stream) >= need:
                break
        if len(stream) >= need:
            break
    if len(stream) < need:
        raise PrunerError(
            f"calibration source {source!r} has only {len(stream):,} tokens, fewer than the "
            f"{samples} x {seq_len} = {need:,} requested; lower --samples or --seq-len")
    ids = torch.tensor(stream[:need], dtype=torch.long).view(samples, seq_len)
    info = {"source": source, "samples": samples, "seq_len": seq_len, "seed": seed,
            "documents_used": used, "tokens": need}
    return Calibration(ids, info)
