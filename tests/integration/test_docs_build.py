"""The docs site builds with `mkdocs build --strict`: a broken link or anchor, a page missing from
the nav, or a failing reference generator (docs/gen_reference.py) fails this test."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# mkdocs-material and properdocs print banners about MkDocs 2.0 on every build; they are not
# warnings of the build, and they bury its real output.
QUIET = {"NO_MKDOCS_2_WARNING": "1", "DISABLE_MKDOCS_2_WARNING": "true"}


def _need_mkdocs() -> None:
    missing = [m for m in ("mkdocs", "material", "mkdocs_gen_files") if importlib.util.find_spec(m) is None]
    if not missing:
        return
    reason = f"{', '.join(missing)} not installed: pip install -e '.[docs]' (the test extra includes it)"
    if os.environ.get("CI", "").lower() not in ("", "0", "false", "no"):
        pytest.fail(f"{reason} (CI is set, so a missing docs toolchain fails instead of skipping)", pytrace=False)
    pytest.skip(reason)


def _build(config: Path, site: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(config),
                           "--site-dir", str(site)], cwd=config.parent, capture_output=True, text=True,
                          env={**os.environ, **QUIET}, timeout=300)


def test_the_site_builds_strictly(tmp_path):
    _need_mkdocs()
    run = _build(ROOT / "mkdocs.yml", tmp_path / "site")
    assert run.returncode == 0, f"mkdocs build --strict failed:\n{run.stdout}\n{run.stderr}"
    site = tmp_path / "site"
    # The generated pages exist and hold what the registries hold.
    from bench.registry import METHODS
    from fitting.laws import LAWS

    methods = (site / "reference" / "methods" / "index.html").read_text()
    assert all(f'id="{name}"' in methods for name in METHODS), "a registered method has no section"
    laws = (site / "reference" / "laws" / "index.html").read_text()
    assert all(f'id="{name}"' in laws for name in LAWS), "a registered law has no section"
    # The results index lists every results page, hand-written or generated.
    index = (site / "results" / "index.html").read_text()
    pages = [p.stem for p in (ROOT / "docs" / "results").glob("*.md") if p.name != "index.md"]
    assert pages and all(f'href="{stem}/"' in index for stem in pages), "a results page is not listed"
    # The home page is the README, its docs/ links pointed at the site's pages.
    home = (site / "index.html").read_text()
    assert 'href="architecture/"' in home and 'href="docs/' not in home


def test_a_broken_link_or_anchor_fails_the_build(tmp_path):
    """The repository's validation settings, on a two-page site, refuse a dead link and a dead
    anchor (mkdocs only logs a dead anchor unless told to warn)."""
    _need_mkdocs()
    import yaml

    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "b.md").write_text("# B\n\n## Here\n")
    mini = {"site_name": "t", "docs_dir": "docs", "validation": config["validation"],
            "markdown_extensions": config["markdown_extensions"], "nav": ["a.md", "b.md"]}
    cfg = tmp_path / "mkdocs.yml"
    cfg.write_text(yaml.safe_dump(mini))
    for body, expected in (("[x](b.md#here)", None), ("[x](gone.md)", "gone.md"),
                           ("[x](b.md#nowhere)", "nowhere")):
        (docs / "a.md").write_text(f"# A\n\n{body}\n")
        run = _build(cfg, tmp_path / "site")
        if expected is None:
            assert run.returncode == 0, run.stderr
        else:
            assert run.returncode != 0 and expected in run.stderr, run.stderr
