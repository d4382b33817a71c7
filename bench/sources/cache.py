"""The prunebench cache directory, and directories built into it atomically.

Split out of `bench.sources.models` (which re-exports these names): GGUF conversions, the nano zoo,
token streams and post-training state all live under one cache directory, and every entry is
built in a temporary sibling and renamed into place, so no reader ever sees a partial one.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Callable

from bench.env import CACHE_DIR_ENV, default_cache_dir
from bench.errors import UsageError
from bench.sources.locks import entry_lock, pid_alive


def resolve_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """The cache directory (`bench.env.default_cache_dir`: the given one, the run's, else
    ``$PRUNEBENCH_CACHE_DIR``, else ``~/.cache/prunebench``), created if missing.

    Checked for writability up front, so a long run never fails at its very end because the
    cache cannot be written.
    """
    path = default_cache_dir(cache_dir)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=path, prefix=".probe-", delete=True)
        probe.close()
    except OSError as exc:
        raise UsageError(
            f"cache directory {str(path)!r} is not writable ({exc.strerror or exc}); "
            f"pass --cache-dir or set {CACHE_DIR_ENV} to a writable directory") from None
    return path


# Temporary build directories are named ``.tmp-<final>.<host>.<pid>-<random>`` so that a later
# build can tell a dead builder's leftovers (killed with SIGKILL, or its machine rebooted)
# from a build still running in another process that shares the cache.
_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def sweep_stale_tmp(final: Path) -> list[Path]:
    """Remove ``final``'s temporary build directories left by dead processes on this host.

    Returns the directories removed. Builds of live processes, and those of other hosts
    (whose pids mean nothing here), are left alone.
    """
    pattern = re.compile(re.escape(f".tmp-{final.name}.") + r"([0-9a-f]{8})\.(\d+)-")
    removed = []
    if not final.parent.is_dir():
        return removed
    for path in final.parent.iterdir():
        match = pattern.match(path.name)
        if match and match.group(1) == _HOST and not pid_alive(int(match.group(2))):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def atomic_dir(final: Path, build: Callable[[Path], None], ready: Callable[[Path], bool] | None = None) -> Path:
    """Build a directory in a temporary sibling, then rename it into place.

    An exception removes the temporary directory; a process killed outright leaves it
    behind, and the next build of the same entry removes it (`sweep_stale_tmp`). Either
    way `final` is never partial.

    The build runs under the entry's lock (`bench.sources.locks.entry_lock`). With `ready`, a process
    that waited for the lock first asks whether another one built the entry meanwhile, and
    then uses it instead of building it again (pytest-xdist workers share one cache).
    """
    with entry_lock(final):
        if ready is not None and ready(final):
            return final
        return _build_dir(final, build)


def _build_dir(final: Path, build: Callable[[Path], None]) -> Path:
    sweep_stale_tmp(final)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}.{_HOST}.{os.getpid()}-", dir=final.parent))
    try:
        build(tmp)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final
