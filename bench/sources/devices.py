"""Devices and dtypes: which device a model goes to and in which precision.

`resolve_device` refuses a CUDA device this machine lacks; `default_dtype` picks float32 on the
CPU and bf16 (or fp16) on CUDA; `parse_dtype` reads a dtype's name as the command line spells it.
"""

from __future__ import annotations

import torch

from bench.errors import UsageError, did_you_mean


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """The requested device, else CUDA when present, else CPU; a CUDA device this machine lacks is refused."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise UsageError(f"unknown device {str(device)!r}; use cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        have = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if have == 0:
            raise UsageError(f"device {str(device)!r} asked for, but this machine has no CUDA device; use --device cpu")
        if dev.index is not None and dev.index >= have:
            raise UsageError(f"device {str(device)!r} asked for, but only {have} CUDA device(s) are visible")
    return dev


def default_dtype(device: torch.device) -> torch.dtype:
    """float32 on CPU (bf16 matmuls are slow and inexact there); bf16 on CUDA when supported."""
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def parse_dtype(name: str | torch.dtype | None) -> torch.dtype | None:
    if name is None or isinstance(name, torch.dtype):
        return name
    table = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
             "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}
    if name not in table:
        raise UsageError(f"unknown dtype {name!r}{did_you_mean(name, table)}; use float32, bf16 or fp16")
    return table[name]

