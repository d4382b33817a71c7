"""A method's options, read from its config dataclass: one source for the CLI and study files.

Each init field of a method's config is one option. Its help text, and anything the
annotation cannot say, live in the field's metadata::

    @dataclass
    class ToyConfig:
        ratio: float = field(metadata={"help": "fraction of each row to zero, in [0, 1)"})
        score: str = field(default="magnitude", metadata={"help": "what ranks weights",
                                                          "choices": ("magnitude", "activation")})

`option(default, help, ...)` is shorthand for that ``field(...)``. Metadata keys:

* ``help`` (required): one sentence for ``prunebench prune --help`` and study-file errors;
* ``choices``: allowed values, shown in the help (the config's ``__post_init__`` still validates,
  so a bad value gets its did-you-mean message from the method itself);
* ``flag``: the CLI flag name without ``--`` (default: the field name with ``-`` for ``_``);
* ``metavar``: the CLI placeholder (e.g. ``START:END``);
* ``cli``: False keeps the field out of the CLI (it stays a study-file key).

The value type comes from the annotation: ``bool``, ``int``, ``float`` or ``str``, optionally
``| None``. Any other annotation (``tuple[int, int] | str | None``) is passed through as given
and parsed by the config itself. The fields ``ratio``, ``seed`` and ``batch_size`` are shared
options (one ``--ratio``, ``--seed`` and ``--batch-size`` for every method); a config declares
them to receive them.
"""

from __future__ import annotations

import dataclasses
import numbers
import types
import typing
from dataclasses import dataclass
from typing import Any

from pruners.errors import PrunerError

SIMPLE = (bool, int, float, str)
SHARED = ("ratio", "seed", "batch_size")  # one CLI flag each, for every method that declares the field
_TYPE_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def option(default=dataclasses.MISSING, help: str = "", **metadata):
    """``field(default=default, metadata={"help": help, **metadata})``; mutable defaults are refused."""
    if isinstance(default, (list, dict, set)):
        raise TypeError("an option's default must be immutable (use a tuple)")
    return dataclasses.field(default=default, metadata={"help": help, **metadata})


@dataclass(frozen=True)
class Option:
    """One configurable field of a method.

    Attributes:
        name: the field name: the study-file key and the keyword of `make_config`.
        kind: bool, int, float or str when the annotation is one of them (optionally with None);
            None when the config parses the value itself.
        optional: None is an accepted value.
        required: the field has no default.
    """

    name: str
    help: str
    kind: type | None
    optional: bool
    required: bool
    default: Any
    choices: tuple | None
    flag: str
    metavar: str | None
    cli: bool

    def describe(self) -> str:
        """The help text with choices and default appended, for --help and listings."""
        parts = [self.help]
        if self.choices:
            parts.append(f"choices: {', '.join(map(str, self.choices))}")
        if not self.required and self.default is not None and not isinstance(self.default, bool):
            parts.append(f"default {self.default}")
        return "; ".join(parts)

    def check(self, value, where: str) -> None:
        """Refuse a value of the wrong type (study files, Python callers) with one line."""
        if self.kind is None or (value is None and self.optional):
            return
        # numbers.Real / Integral, so numpy scalars pass; a bool is never a number here
        want = {float: numbers.Real, int: numbers.Integral}.get(self.kind, self.kind)
        ok = isinstance(value, want) and (self.kind is bool or not isinstance(value, bool))
        if not ok:
            raise PrunerError(f"{where} option {self.name!r} must be {_TYPE_WORDS[self.kind]}"
                             f"{' or absent' if self.optional else ''}, got {value!r}")

    def parse(self, text: str, flag: str):
        """A command-line string as this option's value (bool flags never come here)."""
        if self.kind in (int, float):
            try:
                return self.kind(text)
            except ValueError:
                raise PrunerError(f"{flag} must be {_TYPE_WORDS[self.kind]}, got {text!r}") from None
        return text


def _kind(annotation) -> tuple[type | None, bool]:
    """(simple type or None, whether None is allowed) for an annotation."""
    if annotation in SIMPLE:
        return annotation, False
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = typing.get_args(annotation)
        rest = [a for a in args if a is not type(None)]
        optional = len(rest) < len(args)
        if len(rest) == 1 and rest[0] in SIMPLE:
            return rest[0], optional
        return None, optional
    return None, False


def options(config_cls: type) -> list[Option]:
    """The options of a config dataclass, in field order.

    Raises:
        TypeError: a field without help text (every option must say what it does).
    """
    hints = typing.get_type_hints(config_cls)
    out = []
    for f in dataclasses.fields(config_cls):
        if not f.init:
            continue
        meta = dict(f.metadata)
        if not meta.get("help"):
            raise TypeError(f"{config_cls.__name__}.{f.name} has no help text; declare it with "
                            f"field(..., metadata={{'help': '...'}}) or pruners.options.option(...)")
        kind, optional = _kind(hints.get(f.name))
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        default = None if required else (f.default if f.default is not dataclasses.MISSING else f.default_factory())
        choices = tuple(meta["choices"]) if meta.get("choices") else None
        optional = optional or (not required and default is None)
        out.append(Option(name=f.name, help=meta["help"], kind=kind, optional=optional, required=required,
                          default=default, choices=choices,
                          flag=meta.get("flag", f.name.replace("_", "-")), metavar=meta.get("metavar"),
                          cli=bool(meta.get("cli", True))))
    return out
