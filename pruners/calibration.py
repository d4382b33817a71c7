"""Calibration samples: N sequences of L tokens from a pre-training-like corpus, seeded.

Sources:

* ``c4``: the C4 ``en`` train documents (locally the 1,000-document sample in shared/data);
* ``wikitext2``: WikiText-2 train (the tokenized ``wikitext-2-v1`` file; the raw train split is
  not available offline);
* ``slimpajama``: the local SlimPajama-format directory the post-training corpus reads
  (``corpus_dir``, else ``$PRUNEBENCH_SLIMPAJAMA_DIR``): whole files in an order shuffled by the
  seed, as many as the samples need; with neither, and online only, SlimPajama-627B streamed.

The documents come from `bench.training.calibration_data`; `sample_calibration` takes documents
directly, for callers that load their own.

Sampling rule (the same for every source): shuffle the documents with the seed, drop empty
ones, tokenize each without special tokens, join them with the tokenizer's EOS id, and cut
the first N x L tokens of that stream into N rows. Samples never overlap, the result depends
only on (source, N, L, seed, tokenizer), and asking for more tokens than the corpus holds is
a `PrunerError` rather than a silent repeat.

Defaults follow the reference for each method (`default_shape`, declared by each config's
``calibration_shape``): 128 x 2048 for Wanda and SparseGPT, 10 x 64 for LLM-Pruner's Taylor
importance, 128 x 512 for depth and width.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass

import torch

from pruners.errors import PrunerError, did_you_mean

# source -> (bench.sources.data dataset, split); None: streamed from the hub
SOURCES = {
    "c4": ("c4", "train"),
    "wikitext2": ("wikitext2-tokens", "train"),
    "slimpajama": None,  # a local directory (corpus_dir / $PRUNEBENCH_SLIMPAJAMA_DIR), else the hub
}


@dataclass(frozen=True)
class CalibrationSpec:
    """Which calibration data to draw."""

    source: str = "c4"  # c4 | wikitext2 | slimpajama
    samples: int = 128  # N sequences
    seq_len: int = 2048  # L tokens each
    seed: int = 0
    data_dir: str | None = None  # local copy of shared/data; None: $PRUNEBENCH_DATA_DIR, then hub
    corpus_dir: str | None = None  # slimpajama: its local directory; None: $PRUNEBENCH_SLIMPAJAMA_DIR, then hub

    def __post_init__(self):
        if self.corpus_dir is not None and self.source != "slimpajama":
            raise PrunerError(f"corpus_dir applies to calibration source 'slimpajama' only, not {self.source!r}")
        if self.source not in SOURCES:
            raise PrunerError(f"unknown calibration source {self.source!r}{did_you_mean(self.source, SOURCES)}; "
                             f"choose one of {', '.join(SOURCES)}")
        if int(self.samples) < 1 or int(self.seq_len) < 2:
            raise PrunerError(f"calibration needs at least 1 sample of 2 tokens, got {self.samples} x {self.seq_len}; "
                             "raise --samples / --seq-len")


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


def _documents(spec: CalibrationSpec) -> list[str]:
    # Loading data is the harness's (bench.training.calibration_data); this module only samples. The one
    # lazy import keeps `load_calibration(tokenizer, spec)` working for its callers until they
    # pass documents to `sample_calibration` themselves (issue 14).
    from bench.training.calibration_data import documents

    return documents(spec)


def load_calibration(tokenizer, spec: CalibrationSpec) -> Calibration:
    """Draw `spec.samples` x `spec.seq_len` tokens from the spec's source (see the module docstring)."""
    return sample_calibration(tokenizer, _documents(spec), spec)


def sample_calibration(tokenizer, documents: list[str], spec: CalibrationSpec) -> Calibration:
    """Apply the sampling rule (module docstring) to `documents`, given in source order."""
    docs = [d for d in documents if d and d.strip()]
    order = list(range(len(docs)))
    random.Random(spec.seed).shuffle(order)
    need = spec.samples * spec.seq_len
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
            f"calibration source {spec.source!r} has only {len(stream):,} tokens, fewer than the "
            f"{spec.samples} x {spec.seq_len} = {need:,} requested; lower --samples or --seq-len")
    ids = torch.tensor(stream[:need], dtype=torch.long).view(spec.samples, spec.seq_len)
    info = asdict(spec)
    if info.get("corpus_dir") is None:
        info.pop("corpus_dir", None)
    info.update({"documents_used": used, "tokens": need})
    return Calibration(ids, info)
