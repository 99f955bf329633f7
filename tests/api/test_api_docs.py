"""docs/API.md documents every operation of /openapi.json (a new route without docs fails here)."""

from __future__ import annotations

from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "API.md"


def test_every_operation_is_in_docs_api_md(shared):
    text = DOC.read_text()
    missing = [f"{m.upper()} {p}" for p, ops in shared.app.openapi()["paths"].items() for m in ops
               if f"`{m.upper()} {p}`" not in text]
    assert not missing, f"document these in docs/API.md: {missing}"


def test_every_documented_operation_exists(shared):
    import re

    ops = {f"{m.upper()} {p}" for p, o in shared.app.openapi()["paths"].items() for m in o}
    documented = set(re.findall(r"`((?:GET|POST|PUT|DELETE|HEAD|PATCH) /api/v1/[^`]*)`", DOC.read_text()))
    assert documented <= ops, f"docs/API.md names operations that do not exist: {sorted(documented - ops)}"
