"""Scaling-law forms, one module each, registered by name.

Adding a candidate form means adding one module here that subclasses `Law` and decorates it
with `@register("name")`; every module of this package is imported on the first lookup.
"""

from fitting.laws.base import TOKENS, Asymptote, Law, Unit, available_laws, get_law, register

__all__ = ["TOKENS", "Asymptote", "Law", "Unit", "available_laws", "get_law", "register"]
