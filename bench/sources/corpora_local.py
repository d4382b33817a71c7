"""Read a corpus from a local directory of SlimPajama-format files, and say what it is.

SlimPajama ships as JSON lines compressed with zstandard (``train/chunk1/example_train_0.jsonl.zst``),
and mirrors of it (and of most web corpora) come as ``.jsonl`` or ``.parquet``. Each record's
``text`` field is one document; other fields (``meta``, ``red_pajama_subset``) are ignored.

The directory is searched recursively and its files are read in sorted relative-path order, so
the document order, and with it every seeded slice, depends only on the files, not on the file
system's listing order. A file without a ``text`` field, or a directory without a readable file,
is a `UsageError` naming the file or the directory.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

from bench.errors import UsageError

FORMATS = (".jsonl", ".jsonl.zst", ".parquet")
SLIMPAJAMA_DIR_ENV = "PRUNEBENCH_SLIMPAJAMA_DIR"  # the directory when a recipe or calibration names none
SLIMPAJAMA_DOCS_ENV = "PRUNEBENCH_SLIMPAJAMA_DOCS"  # documents streamed from the hub (online only)
SLIMPAJAMA_HUB = "cerebras/SlimPajama-627B"
SLIMPAJAMA_HUB_DOCS = 1_000_000


def slimpajama_dir(corpus_dir: str | os.PathLike | None = None) -> str | None:
    """The SlimPajama directory: `corpus_dir`, else ``$PRUNEBENCH_SLIMPAJAMA_DIR``; None: neither."""
    chosen = corpus_dir or os.environ.get(SLIMPAJAMA_DIR_ENV) or None
    return None if chosen is None else str(chosen)


def corpus_files(directory: str | os.PathLike) -> list[Path]:
    """The corpus files under `directory` (recursively), in sorted relative-path order."""
    root = Path(directory).expanduser()
    if not root.is_dir():
        raise UsageError(f"corpus directory {str(root)!r} does not exist; point corpus_dir (or "
                         f"$PRUNEBENCH_SLIMPAJAMA_DIR) at a directory of {', '.join(FORMATS)} files")
    files = sorted((p for p in root.rglob("*") if p.is_file() and p.name.endswith(FORMATS)),
                   key=lambda p: p.relative_to(root).as_posix())
    if not files:
        raise UsageError(f"corpus directory {str(root)!r} holds no {', '.join(FORMATS)} files; add files "
                         f"whose records have a 'text' field, or point corpus_dir elsewhere")
    return files


def _json_lines(path: Path, fh) -> list[str]:
    texts = []
    for n, line in enumerate(fh, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UsageError(f"corpus file {path}: line {n} is not JSON ({exc.msg}); each line must be one "
                             f"record with a 'text' field") from None
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise UsageError(f"corpus file {path}: line {n} has no 'text' field (a string); each record "
                             f"must carry its document in 'text'")
        texts.append(record["text"])
    return texts


def _read_zst(path: Path) -> list[str]:
    try:
        import zstandard
    except ImportError:
        raise UsageError(f"corpus file {path} is zstandard-compressed; pip install zstandard, or "
                         f"decompress it to .jsonl") from None
    with open(path, "rb") as raw, zstandard.ZstdDecompressor().stream_reader(raw) as z:
        return _json_lines(path, io.TextIOWrapper(z, encoding="utf-8"))


def _read_parquet(path: Path) -> list[str]:
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    if "text" not in schema.names:
        raise UsageError(f"corpus file {path} has no 'text' column (it has {', '.join(schema.names) or 'none'}); "
                         f"each record must carry its document in 'text'")
    import pyarrow as pa

    kind = schema.field("text").type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        raise UsageError(f"corpus file {path}: its 'text' column holds {kind}, not strings; each record "
                         f"must carry its document in 'text'")
    texts = pq.read_table(path, columns=["text"]).column("text").to_pylist()
    return ["" if t is None else t for t in texts]


def read_file(path: Path) -> list[str]:
    """The ``text`` of every record of one corpus file, in file order."""
    if path.name.endswith(".jsonl.zst"):
        return _read_zst(path)
    if path.name.endswith(".parquet"):
        return _read_parquet(path)
    with open(path, encoding="utf-8") as fh:
        return _json_lines(path, fh)


def read_directory(directory: str | os.PathLike) -> list[str]:
    """Every non-blank document of the directory's files, file by file (see the module docstring)."""
    return [t for path in corpus_files(directory) for t in read_file(path) if t.strip()]


def directory_digest(directory: str | os.PathLike, dataset: str = "slimpajama") -> dict:
    """A directory corpus's identity without reading its documents: a digest over every file's
    relative path, size and sha256 (the list itself can run to thousands of files), so a copied
    directory keeps its identity."""
    import hashlib

    files = directory_identity(directory)
    digest = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()
    return {"dataset": dataset, "source": "local", "directory": str(directory), "files": len(files),
            "bytes": sum(f["bytes"] for f in files), "sha256": digest}


def directory_identity(directory: str | os.PathLike) -> list[dict]:
    """What the directory holds: each file's relative path, size and sha256 (for cache keys, records)."""
    from bench.sources.data import file_sha256

    root = Path(directory).expanduser()
    return [{"file": p.relative_to(root).as_posix(), "bytes": p.stat().st_size, "sha256": file_sha256(p)}
            for p in corpus_files(root)]
