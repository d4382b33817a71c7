"""Training corpora for the nano zoo and post-training, cut into disjoint slices.

A corpus is a list of documents (WikiText-2 train: its 629 articles, each the rows between two
level-1 headings; C4 and SlimPajama: one record's ``text`` each). The corpora (`CORPORA`):

* ``wikitext2``: WikiText-2 train from the data directory (`bench.sources.data`);
* ``c4``: the C4 sample of the data directory (1,000 documents locally);
* ``slimpajama``: a local directory of ``.jsonl``, ``.jsonl.zst`` or ``.parquet`` files with a
  ``text`` field (`bench.sources.corpora_local`), named by the recipe's ``corpus_dir`` or, when that is
  unset, ``$PRUNEBENCH_SLIMPAJAMA_DIR``; with neither, and only when the hub is reachable, the
  first ``$PRUNEBENCH_SLIMPAJAMA_DOCS`` (default 1,000,000) documents of SlimPajama-627B streamed
  through ``datasets``.

It is cut, by whole documents, into three disjoint slices:

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
models learn the blank-line structure they are evaluated on; a C4 or SlimPajama document is its
text followed by ``"\\n\\n"``, the same separator, so documents do not run into each other.

Token streams are cached twice: per process, and on disk under
``<cache>/corpora/<key>.pt`` (``--cache-dir``, else ``$PRUNEBENCH_CACHE_DIR``, else
``~/.cache/prunebench``), where the
key covers the data's identity (each file's sha256, or the hub coordinates), the cut, the slice,
the document limit and the tokenizer's identity. So an xdist worker or the next run loads the
stream instead of tokenising the corpus again; the file is written atomically under a lock.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from bench.sources import corpora_local
from bench.sources import data as data_mod
from bench.sources.atomic import atomic_write
from bench.sources.corpora_local import SLIMPAJAMA_DIR_ENV, SLIMPAJAMA_DOCS_ENV, SLIMPAJAMA_HUB, SLIMPAJAMA_HUB_DOCS
from bench.errors import UsageError, did_you_mean

# corpus name -> (bench.sources.data dataset, split), or None for a corpus read from its own directory
# (or the hub). The raw WikiText-2 train split is not available offline; the tokenized copy
# (with <unk>) is its stand-in, as DESIGN.md section 3 says.
CORPORA = {
    "wikitext2": ("wikitext2-tokens", "train"),
    "c4": ("c4", "train"),
    "slimpajama": None,
}
DIRECTORY_CORPORA = ("slimpajama",)
STREAM_FORMAT = 2  # bump when the on-disk token-stream layout or tokenisation rule changes

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
        corpus_dir: directory corpora (slimpajama) only: where its files are; None:
            ``$PRUNEBENCH_SLIMPAJAMA_DIR``, then the hub. Left out of the repr (and of `to_dict`
            when None) so the cache keys of existing corpora stay what they were; the files'
            contents enter every digest instead.
    """

    corpus: str = "wikitext2"
    heldout_frac: float = 0.04
    posttrain_frac: float = 0.10
    seed: int = 0  # the document permutation
    corpus_dir: str | None = field(default=None, repr=False)

    def __post_init__(self):
        check_corpus(self.corpus)
        if self.corpus_dir is not None:
            if self.corpus not in DIRECTORY_CORPORA:
                raise UsageError(f"corpus_dir applies to {', '.join(DIRECTORY_CORPORA)} only; corpus "
                                 f"{self.corpus!r} is read from the data directory (--data-dir)")
            if not isinstance(self.corpus_dir, str) or not self.corpus_dir:
                raise UsageError(f"corpus_dir must be a directory path (a string), got {self.corpus_dir!r}")
        for name in ("heldout_frac", "posttrain_frac"):
            v = getattr(self, name)
            if not 0 < v < 1:
                raise UsageError(f"{name} must be in (0, 1), got {v}")
        if self.heldout_frac + self.posttrain_frac >= 1:
            raise UsageError("heldout_frac + posttrain_frac must leave documents for pre-training")

    def to_dict(self) -> dict:
        d = asdict(self)
        if d["corpus_dir"] is None:
            del d["corpus_dir"]
        return d


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


def origin(spec: SliceSpec, data_dir=None) -> tuple:
    """Where the corpus's documents come from, resolved now (part of every cache key).

    Returns:
        ``("data", root)`` (a `bench.sources.data` corpus; root None: the hub), ``("dir", path)`` or
        ``("hub", dataset id, documents)``.
    """
    if CORPORA[spec.corpus] is not None:
        root = data_mod.resolve_data_dir(data_dir)
        return ("data", None if root is None else str(root))
    chosen = corpora_local.slimpajama_dir(spec.corpus_dir)
    if chosen is not None:
        return ("dir", str(Path(chosen).expanduser().resolve()))
    if data_mod.hub_reachable():
        return ("hub", SLIMPAJAMA_HUB, _hub_documents_wanted())
    raise UsageError(f"corpus {spec.corpus!r} needs a local directory offline: set the recipe's corpus_dir or "
                     f"${SLIMPAJAMA_DIR_ENV} to a directory of .jsonl, .jsonl.zst or .parquet files with a "
                     f"'text' field, or run online to stream it from the hub")


@functools.lru_cache(maxsize=4)
def _document_texts(corpus: str, where: tuple) -> tuple[str, ...]:
    """Every document of the corpus, as the text it is trained on, in source order."""
    if where[0] == "data":
        dataset, split = CORPORA[corpus]
        rows = data_mod.load_rows(dataset, split, where[1])
        if corpus == "wikitext2":
            return tuple(document_text(d) for d in split_documents(rows))
        return tuple(row + "\n\n" for row in rows if row.strip())
    if where[0] == "dir":
        return tuple(t + "\n\n" for t in corpora_local.read_directory(where[1]))
    return tuple(t + "\n\n" for t in _stream_hub(where[1], where[2]))


def documents(spec: SliceSpec, data_dir=None) -> list[str]:
    """Every document of the corpus as its training text, in source order (before the cut)."""
    return list(_document_texts(spec.corpus, origin(spec, data_dir)))


_documents = documents  # the earlier private name, which tests/integration/test_zoo.py reads


def slice_texts(spec: SliceSpec, name: str, data_dir=None) -> list[str]:
    """The documents of one slice, as texts (see the module docstring)."""
    if name not in SLICES:
        raise UsageError(f"unknown corpus slice {name!r}{did_you_mean(name, SLICES)}; choose one of {', '.join(SLICES)}")
    texts = _document_texts(spec.corpus, origin(spec, data_dir))
    return [texts[i] for i in assignment(len(texts), spec)[name]]


def source_identity(spec: SliceSpec, data_dir=None) -> dict:
    """What the corpus's data is, without reading its documents: file digests or hub coordinates.

    Directory corpora give a digest over every file's relative path, size and sha256 (the list
    itself can run to thousands of files), so a copied directory keeps its identity.
    """
    where = origin(spec, data_dir)
    if where[0] == "data":
        dataset, split = CORPORA[spec.corpus]
        out = data_mod.data_identity(dataset, split, where[1])
        if where[1] is not None:  # the file's own digest, so an edited file never hits a stale cache
            out["sha256"] = data_mod.file_sha256(Path(where[1]) / data_mod.get_source(dataset, split).relpath)
        return out
    if where[0] == "dir":
        return corpora_local.directory_digest(where[1], spec.corpus)
    return {"dataset": spec.corpus, "source": "hub", "hub": where[1], "documents": where[2]}


def slice_info(spec: SliceSpec, data_dir=None) -> dict:
    """What to record about the slices: the cut (documents per slice) and the data's identity."""
    where = origin(spec, data_dir)
    # A stream read from the disk cache brought the count along: no re-reading a large corpus.
    n_docs = _COUNTS.get((spec.corpus, where))
    if n_docs is None:
        n_docs = len(_document_texts(spec.corpus, where))
    return {**spec.to_dict(), "documents": n_docs,
            "documents_per_slice": {k: len(v) for k, v in assignment(n_docs, spec).items()},
            "data": source_identity(spec, data_dir)}


_STREAMS: dict[tuple, torch.Tensor] = {}
_COUNTS: dict[tuple, int] = {}  # (corpus, origin) -> documents in the corpus, as cached streams record it


def token_stream(tokenizer, spec: SliceSpec, name: str, data_dir=None, max_documents: int | None = None,
                 cache_dir=None) -> torch.Tensor:
    """The slice tokenised document by document (no special tokens), concatenated. Shape (T,).

    Args:
        max_documents: only the slice's first this many documents (None: all).
        cache_dir: the prunebench cache the stream is kept in (`bench.sources.models.resolve_cache_dir`:
            None is ``$PRUNEBENCH_CACHE_DIR``, which `pytest bench --cache-dir` sets for the run).
    Cached per process and (tokenizer, corpus, cut, slice, document limit, data source), and on
    disk (see the module docstring) so that no other process tokenises the same slice again.
    """
    from bench.evaluation.perplexity import tokenizer_key

    if name not in SLICES:
        raise UsageError(f"unknown corpus slice {name!r}{did_you_mean(name, SLICES)}; choose one of {', '.join(SLICES)}")
    tok = tokenizer_key(tokenizer)
    where = origin(spec, data_dir)
    key = (tok, spec, name, max_documents, where)
    if key not in _STREAMS:
        if len(_STREAMS) >= 16:
            _STREAMS.pop(next(iter(_STREAMS)))
        inputs = {"format": STREAM_FORMAT, "data": source_identity(spec, data_dir), "slices": spec.to_dict(),
                  "slice": name, "max_documents": max_documents, "tokenizer": tok}
        inputs["slices"].pop("corpus_dir", None)  # where the files are is not what they are
        inputs["data"].pop("directory", None)

        def build():
            texts = slice_texts(spec, name, data_dir)[:max_documents]
            return tokenize(tokenizer, texts), len(_document_texts(spec.corpus, where))

        _STREAMS[key], _COUNTS[(spec.corpus, where)] = _disk_cached(inputs, build, cache_dir)
    return _STREAMS[key]


def tokenize(tokenizer, texts: list[str]) -> torch.Tensor:
    """Texts tokenised one by one (no special tokens), in batches of 64, concatenated. Shape (T,)."""
    parts = [torch.zeros(0, dtype=torch.long)]
    for s in range(0, len(texts), 64):
        rows = tokenizer(texts[s:s + 64], add_special_tokens=False)["input_ids"]
        # One tensor per batch: a list of Python ints for a whole corpus costs ~36 bytes a token.
        parts.append(torch.tensor([i for row in rows for i in row], dtype=torch.long))
    return torch.cat(parts)


def stream_path(inputs: dict, cache_dir=None) -> Path:
    """Where the token stream of `inputs` lives on disk: ``<cache>/corpora/<key>.pt``."""
    from bench.sources.models import resolve_cache_dir

    key = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:24]
    return resolve_cache_dir(cache_dir) / "corpora" / f"{key}.pt"


def _disk_cached(inputs: dict, build, cache_dir=None) -> tuple[torch.Tensor, int]:
    """Load (stream, corpus documents) of `inputs` from disk, or `build()` them and write them atomically."""
    from bench.sources.locks import entry_lock

    path = stream_path(inputs, cache_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    want = json.dumps(inputs, sort_keys=True)
    with entry_lock(path):  # xdist workers wait for the one tokenising instead of repeating it
        if path.is_file():
            blob = torch.load(path, weights_only=True)
            if json.dumps(blob.get("inputs"), sort_keys=True) == want:
                return blob["ids"], blob["documents"]
        ids, n_docs = build()
        atomic_write(path, lambda tmp: torch.save({"inputs": inputs, "ids": ids, "documents": n_docs}, tmp))
    return ids, n_docs


def corpus_hash(spec: SliceSpec, data_dir=None) -> str:
    """A digest of the text of every slice, for cache keys (changes when the data changes)."""
    return _corpus_hash(spec, origin(spec, data_dir))


@functools.lru_cache(maxsize=8)
def _corpus_hash(spec: SliceSpec, where: tuple) -> str:
    h = hashlib.sha256(repr(spec).encode())
    texts = _document_texts(spec.corpus, where)
    slices = assignment(len(texts), spec)
    for name in SLICES:
        for i in slices[name]:
            h.update(texts[i].encode())
    return h.hexdigest()[:16]


# --------------------------------------------------------------------------- the hub (online only)
# Untestable offline; kept to these two functions so the local path above is the tested one.


def _hub_documents_wanted() -> int:
    raw = os.environ.get(SLIMPAJAMA_DOCS_ENV) or str(SLIMPAJAMA_HUB_DOCS)
    if not raw.isdigit() or int(raw) < 3:
        raise UsageError(f"${SLIMPAJAMA_DOCS_ENV} must be a whole number of documents (at least 3), got {raw!r}")
    return int(raw)


def _stream_hub(dataset: str, documents: int) -> list[str]:
    """The first `documents` non-blank texts of `dataset`'s train split, streamed."""
    from datasets import load_dataset

    texts = []
    for row in load_dataset(dataset, split="train", streaming=True):
        if row["text"].strip():
            texts.append(row["text"])
            if len(texts) >= documents:
                break
    return texts
