"""Child processes the tests start: the installed console script and lm-eval's own CLI.

Importable from every tier (the unit tier starts no process; `child_env` in tests/conftest.py
gives a child the test's environment and marks the test `subprocess`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

#: torch's own CPU thread count, before `one_torch_thread` (None until it runs).
TORCH_OWN_THREADS: int | None = None


def one_torch_thread() -> None:
    """One torch thread in this process and, through OMP_NUM_THREADS, in its children.

    Unless OMP_NUM_THREADS is set already. The tests' models are tiny, and on a shared 2-core
    machine (CI, `-n 2`) idle-spinning OpenMP threads stall every step: tests/unit/
    test_train_resume.py took 30 s with torch's default 2 threads, 9 s with 1, at load 4. The
    children (`pytest bench`, the CLI, gloo ranks) then compute as this process does.
    tests/cuda, which times GPU runs, puts torch's own count back (`TORCH_OWN_THREADS`).
    """
    global TORCH_OWN_THREADS
    import torch

    if TORCH_OWN_THREADS is None:
        TORCH_OWN_THREADS = torch.get_num_threads()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


#: lm-eval CLI runs of the zero-shot checks: examples per task, context window, batch size.
LIMIT, MAX_LENGTH, BATCH = 3, 256, 8


def entry_point() -> list[str]:
    """The installed console script, as users run it (falls back to the module)."""
    script = os.path.join(os.path.dirname(sys.executable), "prunebench")
    return [script] if os.path.exists(script) else [sys.executable, "-m", "bench.cli"]


def prunebench(*args, env: dict) -> subprocess.CompletedProcess:
    """`prunebench ARGS` through the console script, in `env`."""
    return subprocess.run([*entry_point(), *args], capture_output=True, text=True, env=env, timeout=600)


def lm_eval_cli(model_dir, data_dir, out_dir, env: dict, tasks=None, limit=LIMIT) -> dict:
    """lm-eval's CLI on a saved model with the shipped tasks; its results JSON."""
    from bench.tasks import LOCAL_TASKS, TASKS_DIR

    cmd = [sys.executable, "-m", "lm_eval", "run", "--model", "hf",
           "--model_args", f"pretrained={model_dir},max_length={MAX_LENGTH},dtype=float32",
           "--device", "cpu", "--include_path", str(TASKS_DIR), "--tasks", ",".join(tasks or LOCAL_TASKS),
           "--metadata", f"data_dir={data_dir}", "--limit", str(limit), "--batch_size", str(BATCH),
           "--output_path", str(out_dir)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**env, "HF_DATASETS_OFFLINE": "1"}, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (path,) = out_dir.rglob("results_*.json")
    return json.loads(path.read_text())


def kill_when(path_glob: tuple[Path, str], proc: subprocess.Popen, timeout: float = 600.0) -> Path:
    """SIGKILL `proc`'s whole process group as soon as a complete state (its meta.json) exists."""
    root, pattern = path_glob
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = sorted(root.glob(pattern))
        if found:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return found[-1].parent
        if proc.poll() is not None:
            pytest.fail(f"the run ended (exit {proc.returncode}) before it saved a training state")
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    pytest.fail("no training state appeared in time")
