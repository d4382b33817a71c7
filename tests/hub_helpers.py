"""Local copies of hub models for the offline tests: a models directory and an HF cache.

`hf_cache_entry` lays a save_pretrained directory out as huggingface_hub's cache does
(https://huggingface.co/docs/huggingface_hub/guides/manage-cache):

    <cache>/models--<org>--<name>/blobs/<sha256 of the file>
    <cache>/models--<org>--<name>/snapshots/<commit>/<file> -> ../../blobs/<sha256>
    <cache>/models--<org>--<name>/refs/main                  (the commit, no newline)
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

# Imported here, before any pytester test: pytester restores sys.modules after each of its tests,
# and transformers' model modules (torch.distributed behind them) cannot be imported twice.
import transformers.models.llama.modeling_llama  # noqa: F401,E402
import transformers.models.qwen2.modeling_qwen2  # noqa: F401,E402


def save_tiny(path: Path, arch: str = "llama", seed: int = 0, **overrides) -> Path:
    """A tiny random model and the byte tokenizer, saved with save_pretrained at `path`."""
    from bench.sources.tiny import byte_tokenizer, tiny_model

    path.mkdir(parents=True, exist_ok=True)
    tiny_model(arch, seed=seed, **overrides).save_pretrained(path)
    byte_tokenizer().save_pretrained(path)
    return path


def hf_cache_entry(cache: Path, hub_id: str, saved: Path, commit: str, ref: str | None = "main") -> Path:
    """Copy the files of `saved` into `cache` as snapshot `commit` of `hub_id`; returns the snapshot."""
    repo = cache / f"models--{hub_id.replace('/', '--')}"
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True, exist_ok=True)
    (repo / "blobs").mkdir(exist_ok=True)
    for f in sorted(saved.iterdir()):
        if not f.is_file():
            continue
        digest = hashlib.sha256(f.read_bytes()).hexdigest()
        blob = repo / "blobs" / digest
        if not blob.exists():
            shutil.copyfile(f, blob)
        link = snap / f.name
        if link.is_symlink() or link.exists():
            link.unlink()
        os.symlink(os.path.relpath(blob, snap), link)
    if ref is not None:
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / ref).write_text(commit)
    return snap
