"""The docs site builds, and no link or image of the README or a docs page points at nothing."""

import os
import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import yaml

from benchmarks.readme_tables import block_files
from tests.helpers import ROOT

LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")  # [text](target "title")
IMG = re.compile(r"<img\b[^>]*\bsrc=[\"']([^\"']+)[\"']", re.IGNORECASE)


def slugs(markdown: str) -> set[str]:
    """The anchors of a page's headings that both GitHub and mkdocs (its toc extension) give them."""
    github, mkdocs = set(), set()
    for heading in re.findall(r"^#+ (.+?)\s*$", markdown, re.MULTILINE):
        text = unicodedata.normalize("NFKD", heading).lower()
        github.add(re.sub(r" ", "-", re.sub(r"[^\w\- ]", "", text)))
        mkdocs.add(re.sub(r"[-\s]+", "-", re.sub(r"[^\w\s-]", "", text.encode("ascii", "ignore").decode()).strip()))
    return github & mkdocs


def broken_links(path: Path) -> list[str]:
    """Each relative link or image of a markdown file (outside code) whose file does not exist, or whose #anchor names
    no heading of the markdown file it points at."""
    text = path.read_text()
    prose = re.sub(r"`[^`\n]*`", "", re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL))
    broken = []
    for target in LINK.findall(prose) + IMG.findall(prose):
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.IGNORECASE) or target.startswith("#"):
            continue  # https:, mailto:, ... and anchors of the page itself
        file, _, anchor = target.partition("#")
        resolved = path.parent / file.split("?")[0]
        if not resolved.exists():
            broken.append(f"{path.name}: {target} (no file {resolved})")
        elif anchor and resolved.suffix == ".md" and anchor not in slugs(resolved.read_text()):
            broken.append(f"{path.name}: {target} (no heading #{anchor} in {resolved.name})")
    return broken


def test_every_link_and_image_of_the_readme_and_the_docs_exists():
    files = block_files()
    assert len(files) > 5  # README.md and the docs pages
    broken = [problem for path in files for problem in broken_links(path)]
    assert not broken, broken


def test_the_link_check_finds_a_missing_file_image_or_heading(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "page.md").write_text("# A page\n\n## What LaGO adds to PPO\n")
    (tmp_path / "figure.png").write_bytes(b"")
    readme = tmp_path / "README.md"
    readme.write_text("[fine](docs/page.md#what-lago-adds-to-ppo) ![fine](figure.png) [fine](https://x.org/y.md) "
                      "[fine](#top) `[in code](nothing.md)`\n\n```\n![in a block](nothing.png)\n```\n")
    assert broken_links(readme) == []
    readme.write_text("[gone](docs/gone.md) ![gone](results/gone.png) <img src=\"gone.png\" width=50> "
                      "[no heading](docs/page.md#no-such-heading)\n")
    assert [problem.split(" (")[0] for problem in broken_links(readme)] == [
        "README.md: docs/gone.md", "README.md: results/gone.png", "README.md: docs/page.md#no-such-heading",
        "README.md: gone.png"]


def test_the_nav_lists_every_docs_page():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())

    def pages(nav) -> list[str]:
        if isinstance(nav, str):
            return [nav]
        entries = nav.values() if isinstance(nav, dict) else nav
        return [page for entry in entries for page in pages(entry)]

    assert sorted(pages(config["nav"])) == sorted(path.name for path in (ROOT / "docs").glob("*.md"))


def test_mkdocs_builds_the_site_in_strict_mode(tmp_path):
    site = tmp_path / "site"
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)], cwd=ROOT,
                            env={**os.environ, "NO_MKDOCS_2_WARNING": "1"}, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (site / "index.html").is_file() and (site / "method.html").is_file()
    for figure in re.findall(r"!\[[^\]]*\]\((results/[^)]+\.png)\)", (ROOT / "docs" / "results.md").read_text()):
        assert (site / figure).is_file(), f"{figure} is not in the built site"  # docs/results -> ../results
