"""The error a bad request of the fitting library raises.

`fitting` is a leaf (numpy and scipy only): it imports nothing of `bench`, so it cannot raise the
harness's `bench.errors.UsageError`. Data or a request it cannot fit (an unknown law or column,
too few points, inputs outside a law's domain) raises `FitError` instead, with a message that
says how to fix it; `bench.errors.USER_ERRORS` holds it, so the CLI prints it as
``prunebench: error: ...`` (on one line) with exit code 2 and the pytest plugin as a usage error.
Bugs stay ordinary exceptions.
"""


class FitError(ValueError):
    """Data or a request the fitting cannot take (see the module docstring)."""
