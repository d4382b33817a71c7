"""The error a bad request of the fitting library raises.

`fitting` is a leaf (numpy and scipy only): it imports nothing of `bench`, so it cannot raise the
harness's `bench.errors.UsageError`. Data or a request it cannot fit (an unknown law or column,
too few points, inputs outside a law's domain) raises `FitError` instead, with a one-line message
that says how to fix it; `bench.errors.USER_ERRORS` holds it, so the CLI prints it as
``prunebench: error: ...`` with exit code 2 and the pytest plugin as a usage error.
Bugs stay ordinary exceptions.
"""

from __future__ import annotations

import difflib


class FitError(ValueError):
    """Data or a request the fitting cannot take; the message is one line saying how to fix it."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))  # one line: callers print it verbatim


def did_you_mean(name, known) -> str:
    """A ' (did you mean X?)' hint for an unknown name, or '' when nothing is close."""
    close = difflib.get_close_matches(str(name), [str(k) for k in known], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
