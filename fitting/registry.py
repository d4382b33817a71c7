"""`Registry`: the one class behind every set of named things prunebench looks up by name.

The pruning methods (`bench.registry.METHODS`), the law forms (`fitting.laws.LAWS`), the study
profiles (`bench.studies.profiles.PROFILES`), the model aliases (`bench.sources.aliases.ALIASES`)
and the nano zoo's families (`bench.training.zoo_families.FAMILIES`) are each one instance, with
the same rules:

* a name registered twice is refused, in one line naming both origins. The same entry again
  (the same function or class, e.g. from a module imported a second time, or an equal value)
  is not a second registration: it replaces the first;
* an unknown name (`lookup`) is one line with a did-you-mean and the known names;
* `listing()` gives every name with its one-line help, `describe()` the same as one line;
* discovery is lazy: the first lookup imports every public module of the registry's
  `packages`, its `modules`, the modules its `sources` add, the modules of its entry-point
  `group` (how a separate, installed package adds an entry), then the modules listed,
  comma-separated, in its environment variable `env`. A registry whose modules *declare*
  entries rather than register them (the pruning methods) passes `collect`, which is given
  every module discovery imports and returns the ``(name, entry, help, origin)`` it declares.

Why it lives in `fitting`: `fitting` needs a registry itself (a fit result names its law, and
reading a fit.json looks the law up by that name), and it may import nothing of `bench`, while
`bench` may import `fitting`. So the class is written once, here, importing only the standard
library; `pruners` does not import it at all, since its
method modules only declare their methods and `bench.registry` collects them.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import os
import pkgutil
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from importlib import metadata
from typing import Any, Generic, TypeVar


T = TypeVar("T")

#: collect(module) -> the (name, entry, help, origin) a module declares.
Collect = Callable[[Any], Iterable[tuple[str, Any, str, str]]]


def did_you_mean(name, known) -> str:
    """A ' (did you mean X?)' hint for an unknown name, or '' when nothing is close."""
    close = difflib.get_close_matches(str(name), [str(k) for k in known], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _ident(entry) -> object:
    """What makes two registrations of one name the same entry: a function's or class's
    module and qualified name (and a function's first line, which tells two lambdas apart), so
    re-importing its module is harmless; else the value."""
    qualname = getattr(entry, "__qualname__", None)
    if qualname is not None and hasattr(entry, "__module__"):
        code = getattr(entry, "__code__", None)
        return (entry.__module__, qualname, getattr(code, "co_firstlineno", None))
    return entry


def _summary(obj) -> str:
    """The first line of an object's docstring, '' without one."""
    doc = (getattr(obj, "__doc__", None) or "").strip()
    return doc.splitlines()[0].strip() if doc else ""


class Registry(Mapping[str, T], Generic[T]):
    """Names -> entries, with one rule set (see the module docstring).

    Args:
        kind: what an entry is, in messages: "pruning method", "law", "profile".
        error: the exception class of a user's mistake (unknown name, broken plugin).
        duplicate_error: the exception class of a name registered twice (default `error`).
        unknown: the end of the unknown-name message; ``{known}`` is the known names.
        packages: packages whose modules not starting with "_" (nor named in `skip`)
            discovery imports.
        modules: further modules discovery imports.
        sources: callables ``fn(registry)`` discovery runs, adding entries that are not
            modules' (the study files of the built-in profiles).
        group: the entry-point group; each entry point names a module (``name = "module"``),
            whose import must register an entry of the entry point's name.
        env: an environment variable listing modules to import, comma-separated.
        collect: for a registry whose modules declare entries: given each module discovery
            imports, returns the ``(name, entry, help, origin)`` it declares, which are added.
        skip: module names of `packages` not to import.
        ident: what makes two registrations of a name the same entry (default: a function's or
            class's module and qualified name, else the value itself).
    """

    def __init__(self, kind: str, *, error: type[Exception] = LookupError,
                 duplicate_error: type[Exception] | None = None, unknown: str = "choose one of {known}",
                 packages: Iterable[str] = (), modules: Iterable[str] = (),
                 sources: Iterable[Callable[[Registry], None]] = (), group: str | None = None,
                 env: str | None = None, collect: Collect | None = None, skip: Iterable[str] = (),
                 ident: Callable[[Any], object] = _ident):
        self.kind = kind
        self.error = error
        self.duplicate_error = duplicate_error or error
        self.unknown = unknown
        self.packages = tuple(packages)
        self.modules = tuple(modules)
        self.sources = tuple(sources)
        self.group = group
        self.env = env
        self.collect = collect
        self.skip = frozenset(skip)
        self.ident = ident
        self._entries: dict[str, T] = {}
        self._origins: dict[str, str] = {}
        self._help: dict[str, str] = {}
        self._watchers: list[Callable[[str, T, bool], None]] = []
        self._discovered = False

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {len(self._entries)} entries)"

    # -- registering ----------------------------------------------------------------------------

    def add(self, name: str, entry: T, *, origin: str, help: str = "") -> T:
        """Register `entry` under `name`; `origin` (a module, a file) names where it comes from.

        Raises:
            duplicate_error: `name` is registered already, by another entry.
        """
        name = str(name)
        if name in self._entries:
            if self.ident(self._entries[name]) == self.ident(entry):
                self._entries[name] = entry  # the same entry again: its module imported anew
                return entry
            raise self.duplicate_error(
                f"{self.kind} {name!r} of {origin} is already registered by {self._origins[name]}; "
                "rename one of them or remove one")
        self._entries[name] = entry
        self._origins[name] = str(origin)
        self._help[name] = " ".join(str(help or "").split())
        for watch in list(self._watchers):
            watch(name, entry, True)
        return entry

    def register(self, name: str, *, help: str | None = None):
        """Decorator: register the decorated function or class under `name`; its help is
        `help`, else the first line of its docstring; its origin is its module."""

        def deco(obj):
            self.add(name, obj, origin=obj.__module__, help=_summary(obj) if help is None else help)
            return obj

        return deco

    def remove(self, name: str) -> T:
        """Unregister `name` (a test's own entry, a family taken back); returns the entry."""
        entry = self._entries.pop(name)
        del self._origins[name], self._help[name]
        for watch in list(self._watchers):
            watch(name, entry, False)
        return entry

    def __setitem__(self, name: str, entry: T) -> None:
        """``registry[name] = entry`` is `add` (duplicates refused), with the caller's module as
        the origin; it lets ``monkeypatch.setitem`` add an entry for one test."""
        caller = sys._getframe(1).f_globals.get("__name__", "?")
        self.add(name, entry, origin=caller)

    def __delitem__(self, name: str) -> None:
        self.remove(name)

    def watch(self, fn: Callable[[str, T, bool], None]) -> None:
        """Call ``fn(name, entry, added)`` for every entry there is and every later `add` /
        `remove` (``added`` False): how a registry derives its entries from another's."""
        self._watchers.append(fn)
        for name, entry in list(self._entries.items()):
            fn(name, entry, True)

    @contextlib.contextmanager
    def scratch(self):
        """Entries added inside the block are removed at its end and removed ones come back,
        and discovery is as it was: for tests that register their own entries."""
        saved = [(n, e, self._origins[n], self._help[n]) for n, e in self._entries.items()]
        discovered = self._discovered
        try:
            yield self
        finally:
            keep = {n for n, *_ in saved}
            for name in [n for n in self._entries if n not in keep]:
                self.remove(name)
            for name, entry, origin, help in saved:
                if self._entries.get(name) is not entry:
                    if name in self._entries:
                        self.remove(name)
                    self.add(name, entry, origin=origin, help=help)
            self._discovered = discovered

    # -- discovery ------------------------------------------------------------------------------

    def rediscover(self) -> None:
        """Run discovery again at the next lookup (after a plugin or $env changed); the entries
        stay, so the same ones found again are no duplicates."""
        self._discovered = False

    def discover(self) -> None:
        """Import what the registry's entries come from (see the class docstring), once."""
        if self._discovered:
            return
        self._discovered = True  # first: the modules imported below look entries up
        try:
            for package in self.packages:
                pkg = importlib.import_module(package)
                for mod in pkgutil.iter_modules(pkg.__path__):
                    if not mod.name.startswith("_") and mod.name not in self.skip:
                        self._import(f"{package}.{mod.name}")
            for module in self.modules:
                self._import(module)
            for source in self.sources:
                source(self)
            if self.group:
                for ep in sorted(metadata.entry_points(group=self.group), key=lambda e: e.name):
                    where = f"entry point {ep.name!r} ({self.group})"
                    module = ep.value.split(":")[0].strip()
                    self._import(module, where)
                    if ep.name not in self._entries:
                        raise self.error(f"{where}: module {module!r} registered no {self.kind} named "
                                         f"{ep.name!r}; the entry point's name must be the {self.kind}'s name")
            if self.env:
                for module in filter(None, (m.strip() for m in os.environ.get(self.env, "").split(","))):
                    self._import(module, f"${self.env}")
        except BaseException:
            self._discovered = False  # a fixed environment may retry
            raise

    def _import(self, module: str, where: str | None = None) -> None:
        try:
            mod = importlib.import_module(module)
        except ImportError as exc:
            if where is None:
                raise
            raise self.error(f"{where} names module {module!r}, which cannot be imported ({exc}); "
                             "install it or fix the name") from None
        if self.collect is not None:
            for name, entry, help, origin in self.collect(mod):
                self.add(name, entry, origin=origin, help=help)

    # -- looking up -----------------------------------------------------------------------------

    def lookup(self, name: str) -> T:
        """The entry of `name`; an unknown name is one line with a did-you-mean."""
        self.discover()
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            known = sorted(self._entries)
            raise self.error(f"unknown {self.kind} {name!r}{did_you_mean(name, known)}; "
                             + self.unknown.format(known=", ".join(known))) from None

    def __getitem__(self, name: str) -> T:
        self.discover()
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        self.discover()
        return iter(sorted(self._entries))

    def __len__(self) -> int:
        self.discover()
        return len(self._entries)

    def __contains__(self, name: object) -> bool:
        self.discover()
        return name in self._entries

    def names(self) -> list[str]:
        """Every registered name, sorted."""
        return list(self)

    def origin(self, name: str) -> str:
        """Where `name`'s entry comes from (a module or a file)."""
        self.lookup(name)
        return self._origins[name]

    def help(self, name: str) -> str:
        """`name`'s one-line help."""
        self.lookup(name)
        return self._help[name]

    def listing(self) -> list[tuple[str, str]]:
        """(name, help) of every entry, sorted by name."""
        return [(n, self._help[n]) for n in self]

    def describe(self, sep: str = "; ") -> str:
        """'name: help; ...' of every entry (a name without help stands alone)."""
        return sep.join(f"{n}: {h}" if h else n for n, h in self.listing())
