"""docs/layout.md names every module of the library (issue 14: the layout matches the tree)."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def layout_block() -> str:
    text = (REPO / "docs" / "layout.md").read_text(encoding="utf-8")
    start = text.index("Layout (one concept per file")
    opening = text.index("```", start)
    return text[opening + 3:text.index("```", opening + 3)]


def test_every_library_module_and_package_is_in_the_layout():
    block = layout_block()
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", block))
    missing = []
    for path in sorted((REPO / "spd_tf").rglob("*.py")):
        if path.stem != "__init__" and path.stem not in words:
            missing.append(str(path.relative_to(REPO)))
    for package in sorted(p.parent for p in (REPO / "spd_tf").rglob("__init__.py")):
        name = f"{package.relative_to(REPO).as_posix()}/"
        if package.parent != REPO and name not in block:
            missing.append(name)
    assert not missing, f"docs/layout.md does not name: {', '.join(missing)}"


def test_the_layout_names_nothing_that_is_gone():
    """Every spd_tf/... path the layout names exists."""
    named = re.findall(r"spd_tf/[A-Za-z0-9_/]+(?:\.py|/)", layout_block())
    gone = [path for path in named if not (REPO / path).exists()]
    assert not gone, f"docs/layout.md names missing paths: {', '.join(gone)}"
