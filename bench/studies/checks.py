"""The checks every study table goes through: one-line errors naming the file and the key
(``study FILE: KEY: problem``), typed values, and TOML values made hashable.
"""

from __future__ import annotations

from pathlib import Path

from bench.errors import UsageError, did_you_mean


class _Where:
    """Formats one-line errors: ``study FILE: KEY: problem``."""

    def __init__(self, path: Path):
        self.path = path

    def error(self, key: str, message: str) -> UsageError:
        return UsageError(f"study {self.path}: {key}: {message}" if key else f"study {self.path}: {message}")

    def keys(self, table: dict, known, key: str) -> None:
        for k in table:
            if k not in known:
                raise self.error(f"{key}.{k}" if key else k,
                                 f"unknown key{did_you_mean(k, known)}; known keys: {', '.join(known)}")

    def table(self, value, key: str) -> dict:
        if not isinstance(value, dict):
            raise self.error(key, f"must be a table, got {_kind(value)}")
        return value

    def string(self, value, key: str, empty: bool = False) -> str:
        if not isinstance(value, str) or (not empty and not value):
            raise self.error(key, f"must be a{'' if empty else ' non-empty'} string, got {value!r}")
        return value

    def integer(self, value, key: str, low: int = 1) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise self.error(key, f"must be an integer >= {low}, got {value!r}")
        return value

    def strings(self, value, key: str) -> tuple[str, ...]:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.error(key, f"must be a list of strings, got {value!r}")
        return tuple(value)

    def boolean(self, value, key: str) -> bool:
        if not isinstance(value, bool):
            raise self.error(key, f"must be true or false, got {value!r}")
        return value


def _kind(value) -> str:
    return {dict: "a table", list: "an array", str: "a string", bool: "a boolean", int: "an integer",
            float: "a number"}.get(type(value), type(value).__name__)


def _frozen(value):
    """TOML value -> hashable value (arrays become tuples), so cases stay hashable."""
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _frozen(v)) for k, v in value.items()))
    return value


def _pairs(table: dict) -> tuple:
    return tuple(sorted((k, _frozen(v)) for k, v in table.items()))
