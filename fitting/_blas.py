"""Run a block with BLAS limited to one thread.

The fit makes many thousands of tiny BLAS calls (L-BFGS-B's internals, 5x5 batched solves).
A multi-threaded OpenBLAS hands each of them to its worker threads; on a machine whose cores
are busy (CI, a shared dev box) every hand-off waits for a core, and scipy's L-BFGS-B was
measured ~50x slower (4 ms instead of 80 us per iteration). One thread is always fastest here.

threadpoolctl does this properly when it is installed; otherwise the OpenBLAS builds bundled
with numpy and scipy wheels are found among the loaded libraries and set directly. If neither
works the block simply runs as it is.
"""

from __future__ import annotations

import contextlib
import ctypes

# (setter, getter) symbol names of the OpenBLAS builds numpy/scipy wheels bundle.
_SYMBOLS = [
    ("openblas_set_num_threads", "openblas_get_num_threads"),
    ("scipy_openblas_set_num_threads", "scipy_openblas_get_num_threads"),
    ("scipy_openblas_set_num_threads64_", "scipy_openblas_get_num_threads64_"),
    ("openblas_set_num_threads64_", "openblas_get_num_threads64_"),
]
_controls: list | None = None


def _openblas_controls() -> list:
    """(set, get) function pairs of every loaded OpenBLAS (Linux: read from /proc/self/maps)."""
    global _controls
    if _controls is not None:
        return _controls
    found = []
    try:
        with open("/proc/self/maps") as fh:
            paths = sorted({line.split()[-1] for line in fh if "openblas" in line.lower() and "/" in line})
    except OSError:
        paths = []
    for path in paths:
        try:
            lib = ctypes.CDLL(path)  # already loaded: this returns the same handle
        except OSError:
            continue
        for set_name, get_name in _SYMBOLS:
            if hasattr(lib, set_name) and hasattr(lib, get_name):
                found.append((getattr(lib, set_name), getattr(lib, get_name)))
                break
    _controls = found
    return found


@contextlib.contextmanager
def one_blas_thread():
    """Limit BLAS to one thread inside the block, restoring the previous setting after."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        pass
    else:
        with threadpool_limits(limits=1, user_api="blas"):
            yield
        return
    controls = _openblas_controls()
    before = [get() for _, get in controls]
    for set_, _ in controls:
        set_(1)
    try:
        yield
    finally:
        for (set_, _), n in zip(controls, before):
            set_(n)
