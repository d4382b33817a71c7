"""The error a bad request of the pruning library raises.

`pruners` is a leaf: it imports nothing of `bench`, so it cannot raise the harness's
`bench.errors.UsageError`. A request it cannot carry out (an unknown method or option, a ratio
that would remove everything, an architecture it does not support) raises `PrunerError` instead,
with a message that says how to fix it; `bench.errors.USER_ERRORS` holds it, so the CLI prints
it as ``prunebench: error: ...`` (on one line) with exit code 2 and the pytest plugin as a usage
error. Bugs stay ordinary exceptions.
"""

from __future__ import annotations

import difflib


class PrunerError(ValueError):
    """A request the pruners cannot carry out; the message says how to fix it (the harness
    prints it on one line, `bench.errors.one_line`)."""


def did_you_mean(name, known) -> str:
    """A ' (did you mean X?)' hint for an unknown name, or '' when nothing is close."""
    close = difflib.get_close_matches(str(name), [str(k) for k in known], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
