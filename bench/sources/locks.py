"""Locks between processes that share a cache or a results directory.

Two kinds:

* `entry_lock(path)`: a short-lived exclusive lock around building one cache entry (a zoo
  model, a tokenizer, a GGUF conversion). Whoever gets it second finds the entry built and
  uses it, so pytest-xdist workers and parallel runs never train the same model twice.
* `RunLock`: who owns a results directory for a whole run. A second `pytest bench` on the same
  directory is refused, naming the process that holds it. The owner is a *run*, not a process:
  under pytest-xdist the controller and every worker share one run id, so the workers write
  records under the controller's lock. A holder that died (killed, machine rebooted) no longer
  counts, so a crashed run never locks a directory for good.

Both rest on `filelock` (what the Hugging Face libraries use for their caches) for the atomic
part; the run lock's owner is a small JSON file read and written under that lock.
"""

from __future__ import annotations

import json
import os
import socket
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock

from bench.errors import UsageError

RUN_LOCK_NAME = ".prunebench-run.json"


LOCK_DIR = ".locks"


@contextmanager
def entry_lock(path: Path):
    """Hold the build lock of the cache entry `path`: ``<parent>/.locks/<name>.lock``.

    The lock files stay (removing a lock file another process may be waiting on is a race),
    in one folder of their own beside the entries, so listings of the cache stay entries only.
    """
    path = Path(path)
    locks = path.parent / LOCK_DIR
    locks.mkdir(parents=True, exist_ok=True)
    with FileLock(str(locks / f"{path.name}.lock")):
        yield


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


class RunLock:
    """Ownership of a results directory by one run (one controller and its xdist workers).

    Args:
        results_dir: the directory to own.
        run_id: identifies the run; every process of one run passes the same id.
        owner_pid: the process whose life the lock follows (the xdist controller, or the
            single pytest process).
    """

    def __init__(self, results_dir: Path, run_id: str, owner_pid: int):
        self.path = Path(results_dir) / RUN_LOCK_NAME
        self.run_id = run_id
        self.owner_pid = owner_pid
        self.host = socket.gethostname()

    def _read(self) -> dict | None:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None  # missing, or a torn write of a crashed owner: nobody holds it
        return data if isinstance(data, dict) else None

    def _held_by_other(self, holder: dict | None) -> bool:
        if not holder or holder.get("run_id") == self.run_id:
            return False
        if holder.get("host") != self.host:
            return True  # its pid means nothing here, so it cannot be proven dead
        return pid_alive(int(holder.get("pid", -1)))

    def acquire(self) -> None:
        """Take the directory for this run, or raise a UsageError naming its holder."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.path) + ".lock"):
            holder = self._read()
            if self._held_by_other(holder):
                raise UsageError(
                    f"results directory {self.path.parent} is in use by another prunebench run (pid "
                    f"{holder.get('pid')} on {holder.get('host')}, started {holder.get('started')}); wait for it, "
                    f"use another --results-dir, or delete {self.path} if that run is dead")
            if holder and holder.get("run_id") == self.run_id:
                return
            import datetime as _dt

            from bench.sources.atomic import atomic_write

            holder = json.dumps({"run_id": self.run_id, "pid": self.owner_pid, "host": self.host,
                                 "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")})
            atomic_write(self.path, lambda tmp: tmp.write_text(holder))

    def release(self) -> None:
        """Give the directory up, if this run still holds it."""
        if not self.path.parent.is_dir():
            return
        with FileLock(str(self.path) + ".lock"):
            holder = self._read()
            if holder and holder.get("run_id") == self.run_id:
                self.path.unlink(missing_ok=True)
