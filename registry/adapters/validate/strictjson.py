"""JSON as JSON defines it, with what Python's json module lets through reported instead of taken."""

from __future__ import annotations

import json
from typing import Any, NamedTuple


class Strict(NamedTuple):
    doc: Any
    duplicate: str | None  # the first key given twice in one object (json would keep the last silently)
    constant: str | None  # the first NaN / Infinity / -Infinity token (not JSON)


def loads(text: str) -> Strict:
    """Parse `text`; raises ValueError (not JSON) or RecursionError (nested too deep) as json does."""
    dups: list[str] = []
    consts: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out = dict(items)
        if len(out) != len(items) and not dups:
            seen: set[str] = set()
            dups.append(next(k for k, _v in items if k in seen or seen.add(k)))  # type: ignore[func-returns-value]
        return out

    def constant(token: str) -> float:
        consts.append(token)
        return float(token.replace("Infinity", "inf"))

    doc = json.loads(text, object_pairs_hook=pairs, parse_constant=constant)
    return Strict(doc, dups[0] if dups else None, consts[0] if consts else None)
