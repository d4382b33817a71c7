"""Evaluation, calibration and training corpora, read locally or from the Hugging Face hub.

Rows are what the hub's `datasets` would give, byte for byte (DESIGN.md section 3):

* WikiText (raw and tokenized): every line of the file is a row, kept with its trailing
  newline, except that a blank line (``" \\n"``) becomes ``""``.
* PTB: every line stripped of surrounding whitespace is a row (the hub's ``sentence`` field).
* C4 sample: one JSON document per line; the row is its ``text``.

A local directory (``--data-dir`` or ``PRUNEBENCH_DATA_DIR``) wins over the hub, because it is
the only source that works offline and the one CI uses. Files whose sha256 is published in
the data README are verified before use; a mismatch is refused, naming the file.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from bench.errors import UsageError, did_you_mean

DATA_DIR_ENV = "PRUNEBENCH_DATA_DIR"


@dataclass(frozen=True)
class Source:
    """Where one split lives: a file in the local layout, and its hub coordinates."""

    relpath: str
    kind: str  # "wikitext" | "ptb" | "jsonl": how lines become rows
    sha256: str | None
    hub: tuple[str, str | None, str, str] | None  # (path, config, split, revision)


# Revisions are pinned: these are script-era datasets whose "main" has moved before.
# The hub path is untestable on this project's offline CI; local files are the tested path.
_WIKITEXT_REV = "b08601e04326c79dfdd32d625aee71d232d685c3"
_PTB_REV = "refs/convert/parquet"

_SPLIT_FILE = {"train": "train", "validation": "valid", "test": "test"}  # a split's part of a file name


def _wikitext(variant: str, split: str, sha256: str) -> Source:
    """A WikiText-2 split: ``raw`` (``wiki.test.raw``) or ``tokens`` (``wiki.test.tokens``)."""
    config = "wikitext-2-raw-v1" if variant == "raw" else "wikitext-2-v1"
    return Source(f"wikitext-2-{variant}/wiki.{_SPLIT_FILE[split]}.{variant}", "wikitext", sha256,
                  ("Salesforce/wikitext", config, split, _WIKITEXT_REV))


def _ptb(split: str, sha256: str) -> Source:
    return Source(f"ptb/ptb.{_SPLIT_FILE[split]}.txt", "ptb", sha256,
                  ("ptb-text-only/ptb_text_only", "penn_treebank", split, _PTB_REV))


SOURCES: dict[str, dict[str, Source]] = {
    "wikitext2": {
        "test": _wikitext("raw", "test", "173c87a53759e0201f33e0ccf978e510c2042d7f2cb78229d9a50d79b9e7dd08"),
        "validation": _wikitext("raw", "validation", "4cd0f6876d07a413aa911261ff6d363c72d757d47f0fdd6015702014c89cb9c7"),
    },
    "wikitext2-tokens": {
        "train": _wikitext("tokens", "train", "9e9fa1ad55b1c2c95b08e37dd8e653f638fac2c6de904b79e813611eefbc985f"),
        "validation": _wikitext("tokens", "validation",
                                "f0737ed31fc1329026e95cb8b98e19c2a182c39c240ab909dc31abf2f8af58e8"),
        "test": _wikitext("tokens", "test", "d790b833ef8cf03a90db7bf1271b7520b83c45ce07ba3c1a9699df81e239eca0"),
    },
    "ptb": {
        "train": _ptb("train", "fcea919f6cf83f35d4d00c6cbf08040d13d4155226340912e2fef9c9c4102cbf"),
        "validation": _ptb("validation", "c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2"),
        "test": _ptb("test", "dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0"),
    },
    "c4": {
        # The sample was re-serialised upstream, so no canonical checksum exists; we pin
        # the copy the data README describes so a silently edited file is still caught.
        "train": Source(
            "c4-sample/c4_sample.jsonl", "jsonl",
            "cdd5b754119131d2934e3e799a059a9d64f53a6aac9e7e2ef79b43120bb01a32",
            None),
    },
}

# The perplexity protocol's split per evaluation dataset (LLM-Pruner uses PTB validation).
EVAL_SPLIT = {"wikitext2": "test", "ptb": "validation"}


def dataset_names() -> list[str]:
    return sorted(SOURCES)


def get_source(dataset: str, split: str) -> Source:
    """Look up a dataset split, with a did-you-mean error for typos."""
    if dataset not in SOURCES:
        raise UsageError(
            f"unknown dataset {dataset!r}{did_you_mean(dataset, SOURCES)}; "
            f"choose one of {', '.join(dataset_names())}")
    splits = SOURCES[dataset]
    if split not in splits:
        raise UsageError(
            f"unknown split {split!r} for dataset {dataset!r}{did_you_mean(split, splits)}; "
            f"choose one of {', '.join(sorted(splits))}")
    return splits[split]


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path | None:
    """The explicit directory, else ``$PRUNEBENCH_DATA_DIR``, else None (hub)."""
    chosen = data_dir if data_dir not in (None, "") else os.environ.get(DATA_DIR_ENV) or None
    if chosen is None:
        return None
    path = Path(chosen).expanduser()
    if not path.is_dir():
        raise UsageError(
            f"data directory {str(path)!r} does not exist; point --data-dir or "
            f"{DATA_DIR_ENV} at a directory laid out like shared/data")
    return path


def rows_from_lines(lines: list[str], kind: str) -> list[str]:
    """Turn a file's lines (each with its newline) into the hub's rows."""
    if kind == "wikitext":
        return [line if line.strip() else "" for line in lines]
    if kind == "ptb":
        return [line.strip() for line in lines]
    if kind == "jsonl":
        return [json.loads(line)["text"] for line in lines if line.strip()]
    raise ValueError(f"unknown row kind {kind!r}")


@functools.lru_cache(maxsize=64)
def _sha256(path: str, mtime_ns: int, size: int) -> str:
    # Keyed on mtime and size so an edited file is hashed again.
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file, hashed once per (path, mtime, size) in a process."""
    st = Path(path).stat()
    return _sha256(str(Path(path).resolve()), st.st_mtime_ns, st.st_size)


def verify_file(path: Path, expected: str | None) -> None:
    """Refuse a file whose sha256 differs from the published one."""
    if expected is None:
        return
    actual = file_sha256(path)
    if actual != expected:
        raise UsageError(
            f"checksum mismatch for {path}: sha256 {actual[:16]}... but the published value is "
            f"{expected[:16]}...; replace the file with a verified copy (see shared/data/README.md)")


def _read_local(root: Path, src: Source) -> list[str]:
    path = root / src.relpath
    if not path.is_file():
        raise UsageError(
            f"missing data file {path}; copy it into the data directory (layout of shared/data) "
            f"or unset --data-dir/{DATA_DIR_ENV} to read from the Hugging Face hub")
    verify_file(path, src.sha256)
    with open(path, encoding="utf-8", newline="") as fh:
        # newline="" keeps line endings exactly as stored; the rows must match byte for byte.
        lines = fh.read().splitlines(keepends=True)
    return rows_from_lines(lines, src.kind)


def hub_reachable(host: str = "huggingface.co", timeout: float = 3.0) -> bool:
    """A quick DNS + TCP probe, so offline machines fail in seconds, not after retries."""
    if os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("HF_DATASETS_OFFLINE") == "1":
        return False
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def _read_hub(src: Source) -> list[str]:
    import datasets

    path, config, split, revision = src.hub
    ds = datasets.load_dataset(path, config, split=split, revision=revision)
    field = "sentence" if src.kind == "ptb" else "text"
    return list(ds[field])


def _no_data_error(dataset: str, split: str) -> UsageError:
    return UsageError(
        f"no source for {dataset}/{split}: set --data-dir or {DATA_DIR_ENV} to a local copy "
        f"laid out like shared/data, or run online so the Hugging Face hub can be used")


@functools.lru_cache(maxsize=32)
def _load_rows_cached(dataset: str, split: str, root: str | None) -> tuple[str, ...]:
    src = get_source(dataset, split)
    if root is not None:
        return tuple(_read_local(Path(root), src))
    if src.hub is None or not hub_reachable():
        raise _no_data_error(dataset, split)
    return tuple(_read_hub(src))


def load_rows(dataset: str, split: str, data_dir: str | os.PathLike | None = None) -> list[str]:
    """The rows of a dataset split, identical to the hub's.

    Args:
        dataset: one of `dataset_names()`.
        split: a split of that dataset (`SOURCES[dataset]`).
        data_dir: local data directory; None means ``$PRUNEBENCH_DATA_DIR``, then the hub.
    """
    root = resolve_data_dir(data_dir)
    return list(_load_rows_cached(dataset, split, None if root is None else str(root)))


def joined_text(dataset: str, split: str, data_dir=None) -> str:
    """Rows joined with ``"\\n\\n"``, as the LLM-Pruner perplexity protocol does."""
    return "\n\n".join(load_rows(dataset, split, data_dir))


def data_identity(dataset: str, split: str, data_dir=None) -> dict:
    """What to record about the data a number came from."""
    src = get_source(dataset, split)
    root = resolve_data_dir(data_dir)
    return {
        "dataset": dataset,
        "split": split,
        "source": "local" if root is not None else "hub",
        "file": src.relpath if root is not None else None,
        "sha256": src.sha256 if root is not None else None,
        "hub": list(src.hub) if src.hub else None,
    }
