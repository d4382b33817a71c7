"""Measuring helpers and the result table of the GPU check (tests/cuda).

Every figure of the check is a ratio against a baseline measured in the same run, on the same
device, right next to it (the baseline runs in pytest-benchmark's `setup` hook before every
timed round, as in tests/benchmarks/bench_*.py). Rows collect here; `tests/cuda/conftest.py` prints the
table at the end of the session and writes it to `report_path()`.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import torch

ROWS: list[dict] = []
COLUMNS = ("check", "setting", "prunebench", "baseline", "ratio", "target", "met", "peak memory", "notes")

# Dense bf16 tensor-core peak FLOP/s, from the vendors' data sheets (without sparsity).
PEAK_BF16_FLOPS = (("H100 PCIe", 756e12), ("H100", 989e12), ("H200", 989e12), ("H20", 148e12),
                   ("A100", 312e12), ("L40S", 362e12), ("A10G", 70e12), ("L4", 121e12))


def report_path() -> Path:
    """$PRUNEBENCH_GPU_REPORT, else gpu-check.md in $PRUNEBENCH_RESULTS_DIR (else ./results)."""
    explicit = os.environ.get("PRUNEBENCH_GPU_REPORT")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("PRUNEBENCH_RESULTS_DIR") or "results") / "gpu-check.md"


def add_row(check: str, setting: str, *, prunebench: str = "", baseline: str = "", ratio: float | None = None,
            target: float | None = None, peak: str = "", notes: str = "", higher_is_better: bool = True) -> dict:
    """Record one line of the table; `met` is derived from ratio and target, never typed in."""
    met = ""
    if ratio is not None and target is not None:
        met = "yes" if (ratio >= target if higher_is_better else ratio <= target) else "no"
    row = {"check": check, "setting": setting, "prunebench": prunebench, "baseline": baseline,
           "ratio": "" if ratio is None else f"{ratio:.3f}",
           "target": "" if target is None else (f">= {target:g}" if higher_is_better else f"<= {target:g}"),
           "met": met, "peak memory": peak, "notes": notes}
    ROWS.append(row)
    return row


def render(rows: list[dict], header: str = "") -> str:
    """A markdown table of `rows` (in the order they were measured)."""
    lines = [header] if header else []
    lines.append("| " + " | ".join(COLUMNS) + " |")
    lines.append("|" + "|".join("---" for _ in COLUMNS) + "|")
    for r in rows:
        lines.append("| " + " | ".join(str(r.get(c, "")).replace("|", "/") for c in COLUMNS) + " |")
    return "\n".join(lines) + "\n"


def machine_header() -> str:
    if not torch.cuda.is_available():
        return "GPU check: no CUDA device"
    name = torch.cuda.get_device_name()
    cap = ".".join(map(str, torch.cuda.get_device_capability()))
    return (f"GPU check on {name} (sm {cap}), torch {torch.__version__}, CUDA {torch.version.cuda}, "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n")


def peak_flops() -> float | None:
    name = torch.cuda.get_device_name() if torch.cuda.is_available() else ""
    for key, flops in PEAK_BF16_FLOPS:
        if key in name:
            return flops
    return None


def gib(nbytes: int | None) -> str:
    return "" if nbytes is None else f"{nbytes / 2**30:.2f} GiB"


def sync() -> None:
    torch.cuda.synchronize()


def peak_bytes(fn) -> tuple[object, int]:
    """(fn(), the most CUDA memory it allocated beyond what was allocated before)."""
    sync()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    out = fn()
    sync()
    return out, torch.cuda.max_memory_allocated() - base


def time_pair(benchmark, target, baseline, rounds: int = 5, warmup_rounds: int = 1) -> tuple[float | None, float, object]:
    """pytest-benchmark times `target`; `baseline` runs (and is timed here) before each round.

    Returns:
        (median target seconds, or None if benchmarks are disabled; median baseline seconds;
        the target's result).
    """
    times: list[float] = []

    def run_baseline():
        sync()
        t0 = time.perf_counter()
        baseline()
        sync()
        times.append(time.perf_counter() - t0)

    def timed():
        out = target()
        sync()
        return out

    result = benchmark.pedantic(timed, setup=run_baseline, rounds=rounds, warmup_rounds=warmup_rounds)
    med = benchmark.stats.stats.median if benchmark.stats is not None else None
    return med, statistics.median(times[-rounds:]), result


def linear_flops_per_token(model) -> int:
    """2 x the weights of every Linear (lm_head included): the matmul FLOPs of one token's forward."""
    return 2 * sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))


def train_flops_per_token(model, seq_len: int) -> float:
    """Forward + backward FLOPs per token: 3 x (Linear matmuls + attention's 2 S x d matmuls per layer).

    The attention term counts the full S x S products (PaLM's convention), not the causal half.
    """
    cfg = model.config
    d_attn = cfg.num_attention_heads * getattr(cfg, "head_dim", cfg.hidden_size // cfg.num_attention_heads)
    return 3 * (linear_flops_per_token(model) + 4 * cfg.num_hidden_layers * seq_len * d_attn)
