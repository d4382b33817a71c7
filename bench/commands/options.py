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


def run_env(args, progress: bool = True):
    """The command's `bench.env.RunEnv` from its --data-dir, --cache-dir, --results-dir and
    --device (each optional); progress on stderr, a live line in a terminal, unless quiet."""
    import sys

    from bench.env import RunEnv
    from bench.progress import Live, Log

    def write(text: str) -> None:
        sys.stderr.write(text)
        sys.stderr.flush()

    shown = (Live(write) if sys.stderr.isatty() else Log(write)) if progress else None
    return RunEnv.make(data_dir=getattr(args, "data_dir", None), cache_dir=getattr(args, "cache_dir", None),
                       results_dir=getattr(args, "results_dir", None), device=getattr(args, "device", None),
                       progress=shown)
