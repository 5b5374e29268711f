"""README.md stays a short front page (issue 24: at most 200 lines) and no documentation link is dead."""

import re
from pathlib import Path
from urllib.parse import unquote

REPO = Path(__file__).resolve().parents[1]
MAX_README_LINES = 200
# [text](target) and ![alt](target); the target ends at whitespace or ')'.
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)[^)]*\)")


def documents() -> list:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def relative_targets(text: str) -> list:
    targets = []
    for target in LINK.findall(text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # a URL (http:, mailto:) or an anchor in the same page
        targets.append(unquote(target.split("#", 1)[0]))
    return targets


def test_readme_is_at_most_200_lines():
    lines = (REPO / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_README_LINES, f"README.md has {lines} lines, more than {MAX_README_LINES}"


def test_every_relative_link_resolves_to_a_file():
    dead = []
    for document in documents():
        for target in relative_targets(document.read_text(encoding="utf-8")):
            if not (document.parent / target).exists():
                dead.append(f"{document.relative_to(REPO)} -> {target}")
    assert not dead, f"links to no file: {', '.join(dead)}"


def test_the_link_reader_sees_links_and_skips_urls_and_anchors():
    text = "[a](docs/a.md) ![b](b.png \"t\") [c](https://x.org/c.md) [d](#results) [e](e.md#part)"
    assert relative_targets(text) == ["docs/a.md", "b.png", "e.md"]
