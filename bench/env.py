"""The run environment: where a run reads and writes, on which device, and what it shows.

One frozen `RunEnv`, built once at the edge (the pytest plugin from its options, a
`prunebench` command from its flags) and passed explicitly to every layer that touches the file
system or a device: loading models (the nano zoo included), data, calibration, post-training,
evaluation, provenance and the memory estimate. Nothing travels through ``os.environ`` for the
run; the environment variables below are read here, once, as the defaults of the options.

* ``data_dir``: a local copy laid out like shared/data, as given (``--data-dir``); None means
  ``$PRUNEBENCH_DATA_DIR``, else the hub, which `bench.sources.data.resolve_data_dir` decides
  where the data is read (records keep what was given, not the machine's path);
* ``cache_dir``: GGUF conversions, the nano zoo, token streams, training states (``--cache-dir``,
  ``$PRUNEBENCH_CACHE_DIR``, else ``~/.cache/prunebench``), resolved to an absolute path;
* ``models_dir``: save_pretrained copies of hub models, ``<dir>/<org>/<name>`` (``--models-dir``,
  ``$PRUNEBENCH_MODELS_DIR``), resolved; None: none;
* ``results_dir``: records and reports (``--results-dir``, ``$PRUNEBENCH_RESULTS_DIR``, else
  ``./results``); created and checked by the harness on first use;
* ``device``: a torch device name; None: CUDA when present, else the CPU;
* ``progress``: a `bench.progress.Progress` (default: quiet).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from bench.progress import QUIET, Progress

CACHE_DIR_ENV = "PRUNEBENCH_CACHE_DIR"
MODELS_DIR_ENV = "PRUNEBENCH_MODELS_DIR"
RESULTS_DIR_ENV = "PRUNEBENCH_RESULTS_DIR"


def default_cache_dir(cache_dir=None) -> Path:
    """``cache_dir``, else ``$PRUNEBENCH_CACHE_DIR``, else ``~/.cache/prunebench``; absolute."""
    chosen = cache_dir or os.environ.get(CACHE_DIR_ENV) or Path.home() / ".cache" / "prunebench"
    return Path(chosen).expanduser().resolve()


def default_models_dir(models_dir=None) -> Path | None:
    """``models_dir``, else ``$PRUNEBENCH_MODELS_DIR``, else None; absolute."""
    chosen = models_dir or os.environ.get(MODELS_DIR_ENV) or None
    return None if chosen is None else Path(chosen).expanduser().resolve()


def default_results_dir(results_dir=None) -> Path:
    """``results_dir``, else ``$PRUNEBENCH_RESULTS_DIR``, else ``./results``."""
    return Path(results_dir or os.environ.get(RESULTS_DIR_ENV) or "results").expanduser()


@dataclass(frozen=True)
class RunEnv:
    """Run-wide places and settings (see the module docstring). Build it with `RunEnv.make`."""

    data_dir: str | None = None
    cache_dir: Path = field(default_factory=default_cache_dir)
    models_dir: Path | None = field(default_factory=default_models_dir)
    results_dir: Path | None = None
    device: str | None = None
    progress: Progress = field(default=QUIET, compare=False)

    @classmethod
    def make(cls, *, data_dir=None, cache_dir=None, models_dir=None, results_dir=None, device=None,
             progress: Progress | None = None) -> "RunEnv":
        """The environment of a run from its options; unset ones take their defaults."""
        return cls(data_dir=None if data_dir is None else str(data_dir), cache_dir=default_cache_dir(cache_dir),
                   models_dir=default_models_dir(models_dir),
                   results_dir=None if results_dir is None else Path(results_dir).expanduser(),
                   device=device, progress=progress or QUIET)
