"""User-facing errors.

Every mistake a user can make (bad option, missing data, unknown model) raises an error whose
message is one line naming the problem and the fix: `UsageError` in the harness, and in the
two leaves, which import nothing of `bench`, their own `pruners.errors.PrunerError` and
`fitting.errors.FitError`. `USER_ERRORS` holds all three: the CLI turns any of them into
`prunebench: error: ...` and exit code 2; the pytest plugin into a usage error.
Internal bugs stay ordinary exceptions so their tracebacks are not hidden.
"""

from fitting.errors import FitError
from pruners.errors import PrunerError, did_you_mean

__all__ = ["USER_ERRORS", "FitError", "PrunerError", "UsageError", "did_you_mean", "one_line"]


class UsageError(Exception):
    """A problem with the user's input, with a one-line message that says how to fix it."""

    def __init__(self, message: str):
        # Keep the message on one line: callers print it verbatim as the whole diagnosis.
        super().__init__(" ".join(str(message).split()))


# What to catch to report a user's mistake in one line (exit 2 / pytest usage error).
USER_ERRORS = (UsageError, PrunerError, FitError)


def one_line(exc: BaseException) -> str:
    """A user error's message as it is shown: one line, whatever the raising code put in it
    (the leaves' errors keep their text as given; how it is shown is the harness's job)."""
    return " ".join(str(exc).split())
