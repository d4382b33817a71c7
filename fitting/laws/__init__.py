"""Scaling-law forms, one module each, registered by name in `LAWS`.

Adding a candidate form means adding one module here that subclasses `Law` and decorates it
with `@register("name")`; every module of this package is imported on the first lookup. A
separate package adds one through the entry point group ``prunebench.laws``
(``[project.entry-points."prunebench.laws"] my-law = "my_package.my_law"``; the entry point's
name must be the law's).
"""

from fitting.laws.base import (ENTRY_POINT_GROUP, LAWS, TOKENS, Asymptote, Law, LawError, Unit, available_laws,
                               get_law, register)

__all__ = ["ENTRY_POINT_GROUP", "LAWS", "TOKENS", "Asymptote", "Law", "LawError", "Unit", "available_laws",
           "get_law", "register"]
