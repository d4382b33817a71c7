"""Real speed of 2:4 sparsity: time a layer's Linears dense and as semi-structured sparse.

Kept apart from the surgery in `pruners.nm`: it needs CUDA (SM80+) and measures kernels, it
changes nothing. `PruneReport.speed` carries its result.
"""

from __future__ import annotations

import torch
from torch import nn

from pruners.adapter import Adapter


@torch.no_grad()
def semi_structured_speedup(model: nn.Module, tokens: int = 4096, repeats: int = 20) -> dict:
    """Time layer 0's 2:4 Linears as dense and as `torch.sparse.to_sparse_semi_structured`.

    Needs CUDA with compute capability >= 8.0 and fp16/bf16 weights; otherwise the result
    says why it was skipped. Every layer has the same shapes, so layer 0 stands for all.

    Returns:
        {"shapes": {name: {"dense_ms", "sparse_ms", "speedup"}}, "speedup": total dense / total sparse,
        "tokens": tokens} or {"skipped": reason}.
    """
    import torch.nn.functional as F

    ad = Adapter(model)
    dev = ad.device
    if dev.type != "cuda" or torch.cuda.get_device_capability(dev)[0] < 8:
        return {"skipped": "needs a CUDA device with compute capability >= 8.0"}
    from torch.sparse import to_sparse_semi_structured

    def timed(fn) -> float:
        for _ in range(3):
            fn()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(repeats):
            fn()
        end.record()
        torch.cuda.synchronize(dev)
        return start.elapsed_time(end) / repeats

    out, dense_total, sparse_total = {}, 0.0, 0.0
    for name, lin in ad.layer_linears(0).items():
        w = lin.weight.detach()
        if w.dtype not in (torch.float16, torch.bfloat16):
            return {"skipped": f"semi-structured kernels need fp16/bf16 weights, not {w.dtype}"}
        x = torch.randn(tokens, w.shape[1], device=dev, dtype=w.dtype)
        try:
            ws = to_sparse_semi_structured(w)
        except (RuntimeError, ValueError) as exc:  # shape or kernel not supported: record why
            out[name] = {"skipped": " ".join(str(exc).split())[:200]}
            continue
        dense = timed(lambda: F.linear(x, w))
        sparse = timed(lambda: F.linear(x, ws))
        out[name] = {"dense_ms": dense, "sparse_ms": sparse, "speedup": dense / sparse}
        dense_total += dense
        sparse_total += sparse
    return {"shapes": out, "tokens": tokens,
            "speedup": dense_total / sparse_total if sparse_total else None}
