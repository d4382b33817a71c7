"""User-facing errors.

Every mistake a user can make (bad option, missing data, unknown model) raises a
`UsageError` whose message is one line naming the problem and the fix. The CLI turns it
into `prunebench: error: ...` and exit code 2; the pytest plugin into a usage error.
Internal bugs stay ordinary exceptions so their tracebacks are not hidden.
"""


class UsageError(Exception):
    """A problem with the user's input, with a one-line message that says how to fix it."""

    def __init__(self, message: str):
        # Keep the message on one line: callers print it verbatim as the whole diagnosis.
        super().__init__(" ".join(str(message).split()))


def did_you_mean(name: str, known) -> str:
    """A ' (did you mean X?)' hint for an unknown name, or '' when nothing is close."""
    import difflib

    close = difflib.get_close_matches(str(name), [str(k) for k in known], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
