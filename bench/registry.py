"""The pruning methods by name: `METHODS`, and the lookups the harness makes in it.

Every registry of prunebench is one `fitting.registry.Registry` (one class, one rule set:
duplicates refused naming both origins, did-you-mean, listing with help, lazy discovery with
entry points):

* pruning methods: `bench.registry.METHODS`, discovering the modules of `pruners`, the entry
  points ``prunebench.pruners`` and ``$PRUNEBENCH_PLUGINS``;
* laws: `fitting.laws.LAWS`, discovering the modules of `fitting.laws` and the entry points
  ``prunebench.laws``;
* study profiles: `bench.studies.profiles.PROFILES`, discovering the study files of
  ``bench/studies/``;
* model aliases: `bench.sources.aliases.ALIASES`, discovering `bench.training.zoo`, which makes
  every size of every zoo family an alias;
* zoo families: `bench.training.zoo_families.FAMILIES` (`register_family`).

The methods registry lives here, not in `pruners`, because `pruners` imports nothing of
`bench` (nor of `fitting`): a method module only *declares* its method (`pruners.registry.
register` attaches a `Method` to its surgery function and config class), and this registry
collects the declarations of every module its discovery imports. Everything `pruners` does with
a method it finds from the config object (`pruners.registry.method_of`); looking a method up by
*name* happens only here.
"""

from __future__ import annotations

from fitting.registry import Registry
from pruners.errors import PrunerError
from pruners.registry import Method, declared

#: The entry-point group through which a separate package adds a pruning method.
ENTRY_POINT_GROUP = "prunebench.pruners"
#: Modules to import for their methods, comma-separated (importable but not installed).
PLUGINS_ENV = "PRUNEBENCH_PLUGINS"


def _collect(module):
    return [(m.name, m, m.summary, m.module) for m in declared(module)]


METHODS: Registry[Method] = Registry(
    "pruning method", error=PrunerError, packages=("pruners",), group=ENTRY_POINT_GROUP, env=PLUGINS_ENV,
    collect=_collect, ident=lambda m: (m.fn.__module__, m.fn.__qualname__))


def get_method(name: str) -> Method:
    """The method registered as `name`; an unknown name is a one-line error with did-you-mean."""
    return METHODS.lookup(name)


def known_methods() -> list[str]:
    return METHODS.names()


def methods() -> list[Method]:
    """Every registered method, sorted by name."""
    return list(METHODS.values())


def make_config(name: str, **fields):
    """Build method `name`'s config from keyword fields (the study-file keys); see
    `pruners.registry.Method.make_config`."""
    return get_method(name).make_config(**fields)
