"""docs/VALIDATION.md's table is the code table: every code, its meaning and its 'silent' verdict."""

from __future__ import annotations

import re
from pathlib import Path

from registry.adapters.validate.codes import CODES

ROOT = Path(__file__).resolve().parents[2]


def test_every_validation_code_is_documented_with_its_meaning():
    rows = re.findall(r"^\| `([A-Z0-9_]+)` \| (.+?) \| (yes|no|partly) \|$", (ROOT / "docs/VALIDATION.md").read_text(),
                      flags=re.M)
    assert {code: (meaning, silent) for code, meaning, silent in rows} == {
        k: (c.meaning, c.silent) for k, c in CODES.items()}


def test_every_code_the_validators_emit_is_in_the_table():
    used = set()
    for p in (ROOT / "registry").rglob("*.py"):
        used |= set(re.findall(r'Finding\(\s*"([A-Z0-9_]+)"', p.read_text()))
    assert used and used <= set(CODES), used - set(CODES)
