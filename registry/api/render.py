"""Result types -> JSON responses, in the `to_dict()` shape (registry/types.py `_plain`)."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

from registry.types import _plain

plain = _plain  # one implementation: registry/types.py


def json(obj: Any, status: int = 200) -> JSONResponse:
    """A JSONResponse with the result type's to_dict() shape."""
    return JSONResponse(plain(obj), status_code=status)
