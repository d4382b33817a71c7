"""Run a block with BLAS limited to one thread.

The fit makes many thousands of tiny BLAS calls (L-BFGS-B's internals, 5x5 batched solves).
A multi-threaded OpenBLAS hands each of them to its worker threads; on a machine whose cores
are busy (CI, a shared dev box) every hand-off waits for a core, and scipy's L-BFGS-B was
measured ~50x slower (4 ms instead of 80 us per iteration). One thread is always fastest here.
threadpoolctl (a declared dependency) finds every loaded BLAS and sets it.
"""

from __future__ import annotations

import contextlib

from threadpoolctl import threadpool_limits


@contextlib.contextmanager
def one_blas_thread():
    """Limit BLAS to one thread inside the block, restoring the previous setting after."""
    with threadpool_limits(limits=1, user_api="blas"):
        yield
