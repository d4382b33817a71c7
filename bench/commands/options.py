"""Options that several subcommands share, each declared once: its flag, default and help."""

from __future__ import annotations


def add_io_options(p, data_help: str) -> None:
    """--data-dir, --cache-dir and --results-dir of a command that evaluates one model."""
    p.add_argument("--data-dir", default=None, help=data_help)
    p.add_argument("--cache-dir", default=None, help="prunebench cache (default $PRUNEBENCH_CACHE_DIR or ~/.cache/prunebench)")
    p.add_argument("--results-dir", default=None, help="also write a versioned record there")


def add_device_options(p) -> None:
    """--device and --dtype, as `bench.sources.models.load_model` takes them."""
    p.add_argument("--device", default=None, help="torch device (default cuda when available, else cpu)")
    p.add_argument("--dtype", default=None, help="float32, bf16 or fp16 (default float32 on CPU, bf16 on CUDA)")
