"""Calibration data, a data source like the others: which corpus a `CalibrationSpec` names,
its documents, and the draw.

Loading data is the harness's job; `pruners.calibration.sample_calibration` only turns the
documents it is given into token rows (the sampling rule is in its module docstring).
`load_calibration(tokenizer, spec, data_dir)` does both: it loads the spec's documents and samples them.
Sources:

* ``c4``: the C4 ``en`` train documents (locally the 1,000-document sample in shared/data), and
  ``wikitext2``: WikiText-2 train (the tokenized ``wikitext-2-v1`` file; the raw train split is
  not available offline): the data directory's files (`bench.sources.data`), or the hub;
* ``slimpajama``: the same local directory as the post-training corpus (`bench.sources.corpora_local`:
  ``.jsonl``, ``.jsonl.zst`` or ``.parquet`` files with a ``text`` field), named by the spec's
  ``corpus_dir``, else ``$PRUNEBENCH_SLIMPAJAMA_DIR``; with neither and only online, the start of
  SlimPajama-627B streamed from the hub.

A SlimPajama directory can hold the whole 627B-token corpus, so only as many files are read as
the samples need: the files are taken in an order shuffled by the calibration seed, whole files
at a time, until their text is a generous multiple of the tokens asked for. The draw therefore
depends only on the directory's files and (samples, seq_len, seed); a file whose records have
no ``text`` field is refused in one line naming it.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.errors import UsageError, did_you_mean
from bench.sources import corpora_local
from bench.sources.corpora_local import SLIMPAJAMA_DIR_ENV, SLIMPAJAMA_HUB, slimpajama_dir

CHARS_PER_TOKEN = 6  # a generous bound: real tokenizers average ~4 characters of English a token

# source -> (bench.sources.data dataset, split); None: a SlimPajama directory, else streamed from the hub
SOURCES = {
    "c4": ("c4", "train"),
    "wikitext2": ("wikitext2-tokens", "train"),
    "slimpajama": None,  # a local directory (corpus_dir / $PRUNEBENCH_SLIMPAJAMA_DIR), else the hub
}

# How a case's record spells each `CalibrationSpec` field in its ``config.prune`` (the keys of
# schema-2 records, which merged the method's options and the calibration settings).
RECORD_KEYS = {"source": "calibration", "samples": "samples", "seq_len": "calib_seq_len", "seed": "seed"}


@dataclass(frozen=True)
class CalibrationSpec:
    """Which calibration data to draw (where the data directory is comes from the run's
    environment, `bench.env.RunEnv.data_dir`)."""

    source: str = "c4"  # c4 | wikitext2 | slimpajama
    samples: int = 128  # N sequences
    seq_len: int = 2048  # L tokens each
    seed: int = 0
    corpus_dir: str | None = None  # slimpajama: its local directory; None: $PRUNEBENCH_SLIMPAJAMA_DIR, then hub

    def __post_init__(self):
        if self.corpus_dir is not None and self.source != "slimpajama":
            raise UsageError(f"corpus_dir applies to calibration source 'slimpajama' only, not {self.source!r}")
        if self.source not in SOURCES:
            raise UsageError(f"unknown calibration source {self.source!r}{did_you_mean(self.source, SOURCES)}; "
                             f"choose one of {', '.join(SOURCES)}")
        if int(self.samples) < 1 or int(self.seq_len) < 2:
            raise UsageError(f"calibration needs at least 1 sample of 2 tokens, got {self.samples} x {self.seq_len}; "
                             "raise --samples / --seq-len")


def load_calibration(tokenizer, spec: CalibrationSpec, data_dir=None):
    """Draw `spec.samples` x `spec.seq_len` tokens from the spec's source: a `pruners.calibration.Calibration`
    whose info records the spec (without an unset corpus_dir), the data directory as the run was
    given it, the documents used and the tokens."""
    from pruners.calibration import sample_calibration

    cal = sample_calibration(tokenizer, documents(spec, data_dir), spec.samples, spec.seq_len, spec.seed,
                             source=spec.source)
    info = asdict(spec)
    if info.get("corpus_dir") is None:
        info.pop("corpus_dir", None)
    info.update({"data_dir": data_dir, "documents_used": cal.info["documents_used"], "tokens": cal.info["tokens"]})
    cal.info = info
    return cal


def documents(spec: CalibrationSpec, data_dir=None) -> list[str]:
    """The documents of `spec`'s source, in source order."""
    if spec.source == "slimpajama":
        directory = slimpajama_dir(spec.corpus_dir)
        if directory is not None:
            return directory_documents(directory, spec.samples * spec.seq_len * CHARS_PER_TOKEN, spec.seed)
        return _hub_documents(spec)
    from bench.sources.data import load_rows

    dataset, split = SOURCES[spec.source]
    return load_rows(dataset, split, data_dir)


def directory_documents(directory, chars: int, seed: int) -> list[str]:
    """Non-blank documents of whole files of `directory`, files in seeded order, until `chars`."""
    files = corpora_local.corpus_files(directory)
    random.Random(seed).shuffle(files)
    docs: list[str] = []
    size = 0
    for path in files:
        for text in corpora_local.read_file(path):
            if text.strip():
                docs.append(text)
                size += len(text)
        if size >= chars:
            break
    return docs


def _hub_documents(spec, max_docs: int = 20000) -> list[str]:
    """Online only: the first documents of SlimPajama-627B, enough text for the samples."""
    from bench.sources.data import hub_reachable

    if not hub_reachable():
        raise UsageError(f"calibration source 'slimpajama' needs a local directory offline: set "
                         f"${SLIMPAJAMA_DIR_ENV} to a directory of .jsonl, .jsonl.zst or .parquet files with a "
                         f"'text' field (the post-training corpus's), go online, or use --calibration c4 or wikitext2")
    from datasets import load_dataset

    need = spec.samples * spec.seq_len * CHARS_PER_TOKEN
    docs, size = [], 0
    for row in load_dataset(SLIMPAJAMA_HUB, split="train", streaming=True):
        docs.append(row["text"])
        size += len(row["text"])
        if size >= need or len(docs) >= max_docs:
            break
    return docs


def identity(spec: CalibrationSpec) -> dict:
    """What a slimpajama calibration draw reads: the directory's file digest, or the hub id."""
    directory = slimpajama_dir(spec.corpus_dir)
    if directory is None:
        return {"source": "hub", "hub": SLIMPAJAMA_HUB}
    return corpora_local.directory_digest(Path(directory).expanduser().resolve())
