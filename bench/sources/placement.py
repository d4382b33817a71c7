"""Placing a loaded model: one device when it fits, else an accelerate ``device_map``.

Split out of `bench.sources.models` (which re-exports these names). `place` casts on the CPU before any
transfer, so a bf16 model never passes through the GPU in float32, and says in a small dict how
the model was placed; that dict goes into every record (``model.info.placement``).
"""

from __future__ import annotations

import torch

from bench.errors import UsageError


FIT_FRACTION = 0.85  # of a GPU's free memory the weights may take, leaving room for activations


def check_device_map(device_map) -> None:
    """Refuse a device_map this machine cannot honour, in one line, before loading anything."""
    if device_map is None or device_map == "auto":
        return
    if not isinstance(device_map, dict) or not device_map:
        raise UsageError(f"device_map must be 'auto' or a non-empty mapping of module -> device, got {device_map!r}")
    cuda = sorted({str(v) for v in device_map.values() if isinstance(v, int) or str(v).startswith("cuda")})
    if cuda and not torch.cuda.is_available():
        raise UsageError(f"device_map places modules on {', '.join(cuda)}, but this machine has no CUDA device; "
                         f"use 'cpu' (or 'disk') entries")


def uses_disk(device_map) -> bool:
    return isinstance(device_map, dict) and "disk" in {str(v) for v in device_map.values()}


def meta_bytes(config, dtype: torch.dtype) -> int:
    """Weight bytes of a model of `config` in `dtype`, built on the meta device (no weights)."""
    from accelerate import init_empty_weights
    from transformers import AutoModelForCausalLM

    with init_empty_weights():
        model = AutoModelForCausalLM.from_config(config)
    return sum(p.numel() for p in model.parameters()) * torch.finfo(dtype).bits // 8


def fits(nbytes: int, dev: torch.device) -> bool:
    if dev.type != "cuda":
        return True
    free, _ = torch.cuda.mem_get_info(dev)
    return nbytes <= FIT_FRACTION * free


def place(model, dev: torch.device, dtype: torch.dtype, device_map=None, offload_dir=None) -> dict:
    """Cast (on the CPU, before any transfer) and place `model`; returns how it was placed.

    A model transformers already dispatched (``hf_device_map``) is only described.
    """
    if getattr(model, "hf_device_map", None) is None:
        model.to(dtype=dtype)
        nbytes = sum(p.numel() * p.element_size() for p in model.parameters())
        if device_map is None and not fits(nbytes, dev):
            device_map = "auto"
        if device_map is None:
            model.to(dev)
            return {"device_map": None, "devices": [str(dev)]}
        from accelerate import dispatch_model, infer_auto_device_map

        if device_map == "auto":
            device_map = infer_auto_device_map(model, no_split_module_classes=getattr(model, "_no_split_modules", None),
                                               dtype=dtype)
        dispatch_model(model, device_map=device_map, offload_dir=offload_dir)
        model.hf_device_map = dict(device_map)
    dm = {name: str(d) for name, d in model.hf_device_map.items()}
    return {"device_map": dm, "devices": sorted(set(dm.values()))}
