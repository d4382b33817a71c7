"""Files written atomically: a reader sees the old file or the new one, never a partial one.

The file is written to a temporary sibling (a name of its own per process and call, hidden by
a leading dot), synced to disk and renamed over the target; any error removes the temporary.
Directories are built the same way by `bench.sources.cache.atomic_dir`.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Callable


def atomic_write(path: Path, write: Callable[[Path], None]) -> Path:
    """`write(tmp)` creates a temporary sibling of `path`, which then replaces `path`; returns `path`."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
