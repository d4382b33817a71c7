"""The architecture page's module map names modules that exist, so it cannot drift from the tree."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "architecture.md"


def _page() -> str:
    assert PAGE.is_file(), f"{PAGE.relative_to(ROOT)} is missing: the module map lives there"
    return PAGE.read_text()


def test_every_module_the_architecture_map_names_exists():
    paths = set(re.findall(r"`((?:bench|pruners|fitting|reports|tests)/[\w/]*(?:\.py|/))`", _page()))
    assert len(paths) >= 30, f"the map names only {len(paths)} modules; did its format change?"
    missing = sorted(p for p in paths if not (ROOT / p).exists())
    assert not missing, f"docs/architecture.md names modules that do not exist: {missing}"


def test_the_map_covers_every_package():
    page = _page()
    for package in ("bench", "pruners", "fitting", "reports"):
        assert f"`{package}`" in page
