"""Model loaders: a GGUF file, a save_pretrained directory, or a hub id, into a `LoadedModel`.

GGUF models are dequantised once and cached as safetensors under the cache directory, because
dequantising on every load costs ~25 s for a 135M model and the result never changes. Local
directories go through the pruned-model loader (`pruners.saving`); hub ids are resolved
offline first (`bench.sources.hub`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from bench.errors import UsageError
from bench.sources import hub
from bench.sources.cache import atomic_dir, resolve_cache_dir
from bench.sources.placement import fits, meta_bytes
from bench.sources.tiny import byte_tokenizer

GGUF_MAGIC = b"GGUF"


@dataclass
class LoadedModel:
    """A model ready to evaluate, with the tokenizer that belongs to it."""

    model: torch.nn.Module
    tokenizer: object
    spec: str
    kind: str  # "alias" | "local" | "gguf" | "hub"
    info: dict = field(default_factory=dict)  # provenance recorded with every result


def check_gguf(path: Path) -> None:
    """Refuse a file that is not GGUF before transformers produces an obscure traceback."""
    try:
        with open(path, "rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise UsageError(f"cannot read GGUF file {path}: {exc.strerror}") from None
    if magic != GGUF_MAGIC:
        raise UsageError(f"{path} is not a GGUF file (no GGUF magic bytes); pass a .gguf model file or a save_pretrained directory")


def _file_key(path: Path) -> str:
    """A cache key for a weights file: its name, size and a hash of its first and last MiB."""
    st = path.stat()
    h = hashlib.sha256(f"{path.name}:{st.st_size}".encode())
    with open(path, "rb") as fh:
        h.update(fh.read(1 << 20))
        fh.seek(max(0, st.st_size - (1 << 20)))
        h.update(fh.read(1 << 20))
    return h.hexdigest()[:16]


def load_gguf(path: str | Path, cache_dir=None) -> LoadedModel:
    """Load a GGUF file via a cached safetensors conversion (done once per file)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path)
    check_gguf(path)
    cache = resolve_cache_dir(cache_dir) / "models" / f"gguf-{path.stem}-{_file_key(path)}"

    def convert(tmp: Path) -> None:
        tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
        # The dequantised weights are plain float tensors; drop the GGUF marker so the copy
        # loads as an ordinary checkpoint.
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.hf_quantizer = None
        model.is_quantized = False
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)

    atomic_dir(cache, convert, ready=lambda d: (d / "config.json").is_file())
    loaded = load_local(cache)
    loaded.kind = "gguf"
    loaded.info.update({"gguf": str(path), "converted": str(cache)})
    return loaded


def load_local(path: str | Path, dtype: torch.dtype = torch.float32) -> LoadedModel:
    """Load a save_pretrained directory, including pruned models (per-layer widths, N:M).

    Args:
        dtype: the weights are read straight into this dtype (no float32 copy of a bf16 model).
    """
    path = Path(path)
    cfg_file = path / "config.json"
    if not cfg_file.is_file():
        raise UsageError(f"{path} has no config.json; pass a save_pretrained directory, a .gguf file or an alias")
    # Every local checkpoint goes through the pruned-model loader: it reads per-layer widths
    # and verifies a saved N:M pattern, and is a plain from_pretrained otherwise.
    from pruners.saving import load_pruned

    model = load_pruned(path, dtype=dtype)
    return LoadedModel(model.eval(), load_saved_tokenizer(path), str(path), "local", {"path": str(path)})


# Class names a generic `tokenizers` pipeline is saved under (transformers 4 and 5).
GENERIC_TOKENIZER_CLASSES = ("PreTrainedTokenizerFast", "TokenizersBackend")


def load_saved_tokenizer(path: Path):
    """The tokenizer saved in a directory, exactly as it was saved.

    AutoTokenizer picks its class from the model type when it knows one: for a Qwen2
    config it builds `Qwen2Tokenizer`, whose own pre-tokenizer and NFC normalizer replace the
    pipeline in tokenizer.json. A tokenizer saved as a generic `tokenizers` pipeline (the nano
    zoo's byte-level BPE) then tokenizes differently than it did when the model was trained
    (measured: a Qwen2 zoo base's held-out loss went from 4.392 to 4.637). Generic ones are
    therefore loaded from tokenizer.json as they are; named classes go through AutoTokenizer.
    """
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    if not any((path / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")):
        return byte_tokenizer()
    try:
        saved_class = json.loads((path / "tokenizer_config.json").read_text()).get("tokenizer_class")
    except (OSError, json.JSONDecodeError):
        saved_class = None
    if saved_class in GENERIC_TOKENIZER_CLASSES and (path / "tokenizer.json").is_file():
        return PreTrainedTokenizerFast.from_pretrained(path)
    return AutoTokenizer.from_pretrained(path)


def load_hub(spec: str, dev: torch.device, dtype: torch.dtype, device_map=None, models_dir=None) -> LoadedModel:
    """A hub spec (``org/name[@revision]``), resolved offline first (`bench.sources.hub`).

    A local copy (models directory or HF cache snapshot) loads like any save_pretrained
    directory; otherwise transformers downloads the pinned revision. ``info`` says where the
    weights came from and their revision, for the record. `models_dir` is the run's models
    directory (`bench.env.RunEnv.models_dir`).
    """
    where = hub.resolve(spec, models_dir)
    info = {"hub_id": where.hub_id, "source": where.source, "revision": where.revision, "pinned": where.pin}
    if where.path is not None:
        loaded = load_local(where.path, dtype=dtype)
        info["path"] = str(where.path)
        return LoadedModel(loaded.model, loaded.tokenizer, spec, "hub", info)
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    hub_map = device_map
    if hub_map is None and dev.type == "cuda":
        config = AutoConfig.from_pretrained(where.hub_id, revision=where.pin)
        hub_map = "auto" if not fits(meta_bytes(config, dtype), dev) else {"": str(dev)}
    model = AutoModelForCausalLM.from_pretrained(where.hub_id, revision=where.pin, dtype=dtype, device_map=hub_map)
    tokenizer = AutoTokenizer.from_pretrained(where.hub_id, revision=where.pin)
    info["revision"] = getattr(model.config, "_commit_hash", None) or hub.hub_revision(where)
    return LoadedModel(model.eval(), tokenizer, spec, "hub", info)
