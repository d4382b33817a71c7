"""Training corpora for the nano zoo and post-training, cut into disjoint slices.

A corpus is a list of documents (WikiText-2 train: its 629 articles, each the rows between two
level-1 headings). It is cut, by whole documents, into three disjoint slices:

* ``heldout``: every checkpoint's held-out loss is measured on a fixed prefix of this slice,
  the same windows for every case; no model ever trains on it;
* ``posttrain``: documents no base model saw in pre-training (for recipes that post-train on
  unseen text);
* ``pretrain``: the rest, what the nano zoo's base models are trained on.

Documents are assigned to slices by a seeded random permutation (each slice keeps file order),
not in contiguous runs: neighbouring WikiText articles share topics, and a contiguous held-out
run measured drift towards whatever topics the training slice happened to hold.

Cutting by documents (not tokens) makes the slices independent of the tokenizer, so a Llama and
a Qwen2 family, or a real model with its own tokenizer, see the same text. A document's text
is its rows joined with ``"\\n\\n"``, as the perplexity protocol joins evaluation rows, so the
models learn the blank-line structure they are evaluated on.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import asdict, dataclass

import torch

from bench import data as data_mod
from bench.errors import UsageError, did_you_mean

# corpus name -> (bench.data dataset, split). The raw WikiText-2 train split is not available
# offline; the tokenized copy (with <unk>) is its stand-in, as DESIGN.md section 3 says.
CORPORA = {
    "wikitext2": ("wikitext2-tokens", "train"),
}

SLICES = ("pretrain", "posttrain", "heldout")
_HEADING = re.compile(r"^ = [^=].* = \n$")  # " = Title = " starts a WikiText article


def check_corpus(name: str) -> str:
    if name not in CORPORA:
        raise UsageError(f"unknown corpus {name!r}{did_you_mean(name, CORPORA)}; "
                         f"choose one of {', '.join(sorted(CORPORA))}")
    return name


@dataclass(frozen=True)
class SliceSpec:
    """How a corpus is cut into slices of whole documents.

    Attributes:
        corpus: a name in `CORPORA`.
        heldout_frac: fraction of documents held out for validation.
        posttrain_frac: fraction of documents kept out of pre-training for post-training.
        seed: seed of the document permutation that assigns documents to slices.
    """

    corpus: str = "wikitext2"
    heldout_frac: float = 0.04
    posttrain_frac: float = 0.10
    seed: int = 0  # the document permutation

    def __post_init__(self):
        check_corpus(self.corpus)
        for name in ("heldout_frac", "posttrain_frac"):
            v = getattr(self, name)
            if not 0 < v < 1:
                raise UsageError(f"{name} must be in (0, 1), got {v}")
        if self.heldout_frac + self.posttrain_frac >= 1:
            raise UsageError("heldout_frac + posttrain_frac must leave documents for pre-training")

    def to_dict(self) -> dict:
        return asdict(self)


def split_documents(rows: list[str]) -> list[list[str]]:
    """Group WikiText rows into articles (each starts at a level-1 heading)."""
    docs: list[list[str]] = []
    for row in rows:
        if _HEADING.match(row) or not docs:
            docs.append([])
        docs[-1].append(row)
    return docs


def document_text(rows: list[str]) -> str:
    return "\n\n".join(rows) + "\n\n"


def assignment(n_docs: int, spec: SliceSpec) -> dict[str, list[int]]:
    """Document indices of each slice, in file order; disjoint, and together all documents."""
    import random

    n_held = max(1, round(n_docs * spec.heldout_frac))
    n_post = max(1, round(n_docs * spec.posttrain_frac))
    if n_held + n_post >= n_docs:
        raise UsageError(f"corpus {spec.corpus!r} has only {n_docs} documents, too few for the requested slices")
    perm = list(range(n_docs))
    random.Random(spec.seed).shuffle(perm)
    return {"heldout": sorted(perm[:n_held]), "posttrain": sorted(perm[n_held:n_held + n_post]),
            "pretrain": sorted(perm[n_held + n_post:])}


def _documents(spec: SliceSpec, data_dir) -> list[list[str]]:
    dataset, split = CORPORA[spec.corpus]
    return split_documents(data_mod.load_rows(dataset, split, data_dir))


def slice_texts(spec: SliceSpec, name: str, data_dir=None) -> list[str]:
    """The documents of one slice, as texts (see the module docstring)."""
    if name not in SLICES:
        raise UsageError(f"unknown corpus slice {name!r}{did_you_mean(name, SLICES)}; choose one of {', '.join(SLICES)}")
    docs = _documents(spec, data_dir)
    return [document_text(docs[i]) for i in assignment(len(docs), spec)[name]]


def slice_info(spec: SliceSpec, data_dir=None) -> dict:
    """What to record about the slices: the cut (documents per slice) and the data's identity."""
    dataset, split = CORPORA[spec.corpus]
    docs = _documents(spec, data_dir)
    return {**spec.to_dict(), "documents": len(docs),
            "documents_per_slice": {k: len(v) for k, v in assignment(len(docs), spec).items()},
            "data": data_mod.data_identity(dataset, split, data_dir)}


_STREAMS: dict[tuple, torch.Tensor] = {}


def token_stream(tokenizer, spec: SliceSpec, name: str, data_dir=None, max_documents: int | None = None) -> torch.Tensor:
    """The slice tokenised document by document (no special tokens), concatenated. Shape (T,).

    Args:
        max_documents: only the slice's first this many documents (None: all).
    Cached per process and (tokenizer, corpus, cut, slice, document limit, data directory).
    """
    from bench.perplexity import tokenizer_key

    root = data_mod.resolve_data_dir(data_dir)
    key = (tokenizer_key(tokenizer), spec, name, max_documents, None if root is None else str(root))
    if key not in _STREAMS:
        if len(_STREAMS) >= 16:
            _STREAMS.pop(next(iter(_STREAMS)))
        texts = slice_texts(spec, name, data_dir)[:max_documents]
        ids: list[int] = []
        for s in range(0, len(texts), 64):
            for row in tokenizer(texts[s:s + 64], add_special_tokens=False)["input_ids"]:
                ids.extend(row)
        _STREAMS[key] = torch.tensor(ids, dtype=torch.long)
    return _STREAMS[key]


def windows(stream: torch.Tensor, seq_len: int) -> torch.Tensor:
    """Non-overlapping windows, last partial one dropped. (T,) -> (n, seq_len)."""
    n = stream.numel() // seq_len
    return stream[: n * seq_len].view(n, seq_len)


def corpus_hash(spec: SliceSpec, data_dir=None) -> str:
    """A digest of the text of every slice, for cache keys (changes when the data changes)."""
    root = data_mod.resolve_data_dir(data_dir)
    return _corpus_hash(spec, None if root is None else str(root))


@functools.lru_cache(maxsize=8)
def _corpus_hash(spec: SliceSpec, root: str | None) -> str:
    h = hashlib.sha256(repr(spec).encode())
    for name in SLICES:
        for text in slice_texts(spec, name, root):
            h.update(text.encode())
    return h.hexdigest()[:16]
