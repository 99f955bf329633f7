"""Docs that cannot go stale: every module and file the docs name exists, and nothing points
outside the repository."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# a path inside the repository, as the docs write them: registry/app.py, docs/JSON.md, tests/contract/
PATH = re.compile(r"(?<![\w./-])((?:registry|cli|migrations|tests|bench|docs|\.ci)/[\w./-]*[\w/])")


def named_paths(text: str) -> set[str]:
    return {m.rstrip("/.") for m in PATH.findall(text)}


def test_architecture_names_the_layers():
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    for must in ("registry/app.py", "registry/core.py", "registry/workflows/", "registry/protocol.py",
                 "registry/gates.py", "registry/errors.py"):
        assert must in text


def _generated(p: str) -> bool:
    """Output folders the project writes and git ignores (bench/results/ ...) need not exist."""
    ignored = [line.strip("/") for line in (ROOT / ".gitignore").read_text().splitlines() if "/" in line.strip("/")]
    return any(p == g or p.startswith(g + "/") for g in ignored)


def test_every_path_the_docs_name_exists():
    missing = sorted(f"{doc.name}: {p}" for doc in DOCS for p in named_paths(doc.read_text())
                     if not (ROOT / p).exists() and not _generated(p))
    assert missing == []


def test_every_docstring_path_exists():
    """Module docstrings and comments name files too (settings.py once pointed at a missing doc)."""
    missing = []
    for py in [*(ROOT / "registry").rglob("*.py"), *(ROOT / "cli").rglob("*.py")]:
        for p in named_paths(py.read_text()):
            if p.startswith("docs/") and not (ROOT / p).exists():
                missing.append(f"{py.relative_to(ROOT)}: {p}")
    assert missing == []


def test_no_doc_points_outside_the_repository():
    bad = sorted(f"{doc.name}: {m}" for doc in DOCS for m in re.findall(r"\.\./[\w./-]+", doc.read_text()))
    assert bad == []


def test_the_path_finder_finds_paths():
    assert named_paths("see registry/app.py and `docs/JSON.md`, tests/contract/.") == {
        "registry/app.py", "docs/JSON.md", "tests/contract"}
