"""What every surgery returns: exact counts, what was removed, and what it cost.

`PruneReport.to_dict()` is the JSON record the CLI prints and the benchmark stores. A method
that zeroes weights in place (N:M) puts keep-masks on the report and sets `keeps_masks`; the
harness then holds those weights at zero during post-training. The masks are tensors and not
part of the dict; `keeps_masks` is.
"""

from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, is_dataclass
from typing import Any

import torch


def count_params(model: torch.nn.Module) -> int:
    """Exact parameter count; tied embeddings count once (as `model.parameters()` yields them)."""
    return sum(p.numel() for p in model.parameters())


@dataclass
class PruneReport:
    """The outcome of one surgery.

    `ratio` is the achieved fraction of parameters removed, ``1 - params_after / params_before``;
    for N:M sparsity "removed" means masked to zero (the tensors keep their shapes).
    """

    method: str
    config: dict
    params_before: int
    params_after: int
    target_ratio: float | None = None
    removed: dict = field(default_factory=dict)  # layers / channels / heads, per method
    sparsity_per_layer: dict = field(default_factory=dict)  # decoder layer -> fraction removed
    layer_sizes: list = field(default_factory=list)  # per decoder layer, after surgery
    importance: dict = field(default_factory=dict)  # small score vectors worth keeping
    calibration: dict | None = None
    notes: list = field(default_factory=list)
    wall_time_s: float = 0.0
    peak_memory_bytes: int = 0
    memory_kind: str = ""
    device: str = ""
    dtype: str = ""
    dry_run: bool = False
    speed: dict = field(default_factory=dict)  # e.g. 2:4 sparse vs dense matmul timings (CUDA)
    # parameter name -> keep-mask (True = kept); with keeps_masks, post-training keeps the rest at 0
    masks: dict[str, torch.Tensor] | None = field(default=None, repr=False)
    keeps_masks: bool = False

    @property
    def ratio(self) -> float:
        if self.params_before == 0:
            return 0.0
        return 1.0 - self.params_after / self.params_before

    def to_dict(self) -> dict:
        d = {k: _jsonable(v) for k, v in asdict(self).items() if k != "masks"}
        d["ratio"] = self.ratio
        d["params_removed"] = self.params_before - self.params_after
        d["remaining_pct"] = 100.0 * self.params_after / self.params_before if self.params_before else 0.0
        return d


def _jsonable(v: Any):
    if isinstance(v, torch.Tensor):
        return v.tolist()
    if is_dataclass(v):
        return _jsonable(asdict(v))
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):  # not Linux: fall back to the lifetime high-water mark
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class _RssSampler(threading.Thread):
    """Polls the resident set size; torch's CPU allocations are invisible to tracemalloc."""

    def __init__(self, interval: float = 0.005):
        super().__init__(daemon=True)
        self.interval = interval
        self.start_rss = _rss_bytes()
        self.peak = self.start_rss
        self._stop_evt = threading.Event()

    def run(self):
        while not self._stop_evt.wait(self.interval):
            self.peak = max(self.peak, _rss_bytes())

    def stop(self) -> int:
        self._stop_evt.set()
        self.join()
        self.peak = max(self.peak, _rss_bytes())
        return self.peak - self.start_rss


@contextmanager
def measure(report: PruneReport, device: torch.device):
    """Fill `report`'s wall time and peak memory for the enclosed work.

    CUDA: peak allocated bytes (``torch.cuda.max_memory_allocated``) during the block.
    CPU: peak resident-set growth over the block, sampled every 5 ms.
    """
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        sampler = None
    else:
        sampler = _RssSampler()
        sampler.start()
    t0 = time.perf_counter()
    try:
        yield report
    finally:
        if cuda:
            torch.cuda.synchronize(device)
            report.peak_memory_bytes = int(torch.cuda.max_memory_allocated(device) - base)
            report.memory_kind = "cuda_max_allocated_delta"
        else:
            report.peak_memory_bytes = int(sampler.stop())
            report.memory_kind = "cpu_rss_peak_delta"
        report.wall_time_s = time.perf_counter() - t0


def start_report(method: str, model: torch.nn.Module, config, calibration=None) -> PruneReport:
    """A report with the "before" half filled in (counts, config, calibration, device)."""
    p = next(model.parameters())
    cfg = asdict(config) if is_dataclass(config) else dict(config)
    return PruneReport(
        method=method,
        config=_jsonable(cfg),
        params_before=count_params(model),
        params_after=count_params(model),
        target_ratio=getattr(config, "ratio", None),
        calibration=None if calibration is None else dict(calibration.info),
        device=str(p.device),
        dtype=str(p.dtype).replace("torch.", ""),
        dry_run=p.device.type == "meta",
    )


@contextmanager
def eval_mode(model: torch.nn.Module):
    """Run calibration passes in eval mode (no dropout), restoring the caller's mode."""
    was = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was)
