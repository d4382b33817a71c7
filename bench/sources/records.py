"""The results directory's records: one versioned JSON file per case, written atomically.

A record is only ever replaced whole (temporary file in the same directory, fsync, rename), so
a killed run leaves either the old record or the new one, never half of one; `--resume` and the
report step can trust every file they find. Files are parsed here, once, into typed records
(`reports.records.Record`); another schema is refused in one line.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import tempfile
from importlib import metadata
from pathlib import Path

from bench.env import default_results_dir
from bench.errors import UsageError
from bench.sources.atomic import atomic_write
from reports.records import Record, RecordError

RECORD_SUFFIX = ".json"

_VERSIONED = ("prunebench", "torch", "transformers", "datasets", "accelerate", "tokenizers",
              "numpy", "scipy", "peft", "gguf")


def package_versions() -> dict:
    out = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def cpu_model() -> str | None:
    """The CPU's model name (``/proc/cpuinfo``; elsewhere `platform.processor`)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def machine_info() -> dict:
    """Where a record was made: platform, CPU model and count, the vector ISA the CPU kernels
    run (`bench.isa`), torch's BLAS and oneDNN, threads, and the GPU."""
    from bench.isa import state

    info = {"platform": platform.platform(), "machine": platform.machine(),
            "processor": platform.processor() or None, "cpu_model": cpu_model(), "cpu_count": os.cpu_count()}
    try:
        import torch

        config = torch.__config__.show()
        info["cpu_isa"] = state()
        info["blas"] = next((part.split("=", 1)[1] for part in config.replace(",", " ").split()
                             if part.startswith("BLAS_INFO=")), None)
        info["onednn"] = next((line.strip().lstrip("- ") for line in config.splitlines()
                               if "MKL-DNN" in line or "oneDNN" in line), None)
        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
            info["gpu_capability"] = list(torch.cuda.get_device_capability(0))
    except ImportError:  # pragma: no cover - torch is a hard dependency
        pass
    return info


def resolve_results_dir(results_dir: str | os.PathLike | None) -> Path:
    """The results directory (`bench.env.default_results_dir`), created and checked writable
    before any case runs."""
    path = default_results_dir(results_dir)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".probe-"):
            pass
    except OSError as exc:
        raise UsageError(
            f"results directory {str(path)!r} is not writable ({exc.strerror or exc}); "
            f"pass --results-dir (or $PRUNEBENCH_RESULTS_DIR) pointing at a writable directory") from None
    return path


def _clean(obj):
    """JSON has no NaN/inf: store them as strings so a diverged loss is visible, not invalid."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return repr(obj)
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def stamp() -> dict:
    """What every record says about when and where it was made: creation time, library
    versions and machine (the fields `Record` takes as ``created``, ``versions``, ``machine``)."""
    return {"created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "versions": package_versions(), "machine": machine_info()}


def record_path(results_dir: Path, case_id: str) -> Path:
    return Path(results_dir) / "records" / f"{case_id}{RECORD_SUFFIX}"


def write_record(results_dir: Path, record: Record) -> Path:
    """Write one record atomically; returns its path."""
    path = record_path(results_dir, record.case_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = json.dumps(_clean(record.to_json()), indent=1, sort_keys=True)
    return atomic_write(path, lambda tmp: tmp.write_text(payload))


def read_record(path: Path) -> Record:
    """Read and parse one record, refusing other schema versions with a clear message."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UsageError(f"cannot read record {path}: {exc}; delete it and re-run the case") from None
    try:
        return Record.from_json(data, str(path))
    except RecordError as exc:
        raise UsageError(str(exc)) from None


def load_records(results_dir: Path, problems: list[str] | None = None) -> list[Record]:
    """Every record under ``results_dir/records``, sorted by case id.

    Args:
        problems: when given, a record that cannot be used (truncated, not JSON, another
            schema) is left out and named here in one line, so one bad file never stops a
            report of the others; when None, the first such record raises its UsageError.
    """
    folder = Path(results_dir) / "records"
    if not folder.is_dir():
        return []
    out = []
    for p in sorted(folder.glob(f"*{RECORD_SUFFIX}")):
        try:
            out.append(read_record(p))
        except UsageError as exc:
            if problems is None:
                raise
            problems.append(f"skipped {exc}")
    return out


def load_run(results_dir: str | os.PathLike) -> tuple[Path, list[Record]]:
    """(directory, records) of an earlier run, for the commands that only read results.

    Refuses, in one line each, a directory that does not exist or holds no records.
    """
    root = Path(results_dir)
    if not root.is_dir():
        raise UsageError(f"results directory {root} does not exist; pass the --results-dir of an earlier run")
    records = load_records(root)
    if not records:
        raise UsageError(f"{root} holds no records (looked in {root / 'records'}); "
                         f"run `pytest bench --results-dir={root}` first")
    return root, records
