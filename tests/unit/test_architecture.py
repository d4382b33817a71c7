"""The README's architecture map names modules that exist, so it cannot drift from the tree."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _section(text: str, title: str) -> str:
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end != -1 else None]


def test_every_module_the_architecture_map_names_exists():
    section = _section((ROOT / "README.md").read_text(), "Architecture")
    paths = set(re.findall(r"`((?:bench|pruners|fitting|reports|tests)/[\w/]*(?:\.py|/))`", section))
    assert len(paths) >= 30, f"the map names only {len(paths)} modules; did its format change?"
    missing = sorted(p for p in paths if not (ROOT / p).exists())
    assert not missing, f"README's Architecture section names modules that do not exist: {missing}"


def test_the_map_covers_every_package():
    section = _section((ROOT / "README.md").read_text(), "Architecture")
    for package in ("bench", "pruners", "fitting", "reports"):
        assert f"`{package}`" in section
