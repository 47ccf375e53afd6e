"""The README and docs/ as a reader follows them: every relative link reaches a file (and a heading, for an anchor),
every file of the package they name is there (a file that is gone is written `commit:path`, as `git show` reads it),
and none sends the reader to an issue number they cannot open."""

import re
from pathlib import Path

import pytest

from hpa_utils.system import environment

ROOT = environment.REPO_ROOT
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "benchmarks" / "README.md"]
LINK = re.compile(r"\]\(([^)\s]+)\)")
PACKAGE_PATH = re.compile(r"(?<![0-9a-f]:)(?<![\w/])(?:\.\./)?hpa_utils/[\w./-]*[\w/]")


def heading_anchor(heading: str) -> str:
    """GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {heading_anchor(found) for found in re.findall(r"^#+\s+(.*)$", page.read_text(), flags=re.MULTILINE)}


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_relative_link_reaches_its_file_and_heading(page):
    broken = []
    for target in LINK.findall(page.read_text()):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target}: no heading with that anchor")
    assert broken == []


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_package_file_a_page_names_is_there_and_no_issue_number_is_a_reference(page):
    text = page.read_text()
    named = set(PACKAGE_PATH.findall(text))
    missing = sorted(name for name in named if not (page.parent / name).exists() and not (ROOT / name).exists())
    assert missing == []
    assert re.findall(r"\bissues? \d+", text) == []


def test_the_readme_is_a_path_the_two_commands_and_what_to_read_on_its_first_screen():
    lines = (ROOT / "README.md").read_text().splitlines()
    first_screen = "\n".join(lines[:40])
    assert len(lines) <= 120
    assert "make demo" in first_screen and "make test" in first_screen and "## What to read" in first_screen
    stages = [name.removesuffix(".ipynb") for name in sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))]
    assert all(f"| `{stage}` |" in first_screen for stage in stages)  # every notebook: what to read, what to notice
