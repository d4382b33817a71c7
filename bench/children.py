"""Child processes that end with the process that started them.

The zoo's builders (`bench.training.zoo.ensure_all`) and the distributed ranks
(`bench.training.distributed`) are spawned processes. Ctrl-C reaches them with their parent (one
process group), but a parent killed on its own (``kill PID``, a CI runner's timeout, an xdist
worker torn down) used to leave them running: a zoo builder then trained for minutes more,
taking the cores of whatever ran next and writing into a cache nobody was waiting on. On Linux
the kernel can send a child a signal when its parent exits (``prctl(PR_SET_PDEATHSIG)``); each
child asks for SIGTERM as its first act. Elsewhere this is a no-op, and an orphan runs on as
before.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(parent: int | None = None) -> bool:
    """Ask for SIGTERM when the parent process exits; True where the platform can.

    `parent` is the pid the caller expects as its parent (the starter's ``os.getpid()``): if it
    is already gone by the time the child gets here (the kernel then sends nothing, the child
    having been re-parented first), the child exits at once instead of running as an orphan.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):
        return False
    if parent is not None and os.getppid() != parent:
        os._exit(1)
    return True
