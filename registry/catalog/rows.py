"""`row(s, Model, id)`: a row that must exist, by primary key.

`Session.get` answers None for a missing row; inside a workflow that read the id a moment ago in
the same catalog, a missing row means it was deleted concurrently, which is a NotFound for the
caller rather than an AttributeError on None.
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy.orm import Session

from registry.errors import NotFound

R = TypeVar("R")


def row(s: Session, model: type[R], ident: Any) -> R:
    """The row of `model` with primary key `ident`.

    Raises:
        NotFound: there is none (deleted meanwhile)
    """
    found = s.get(model, ident)
    if found is None:
        raise NotFound(f"{getattr(model, '__tablename__', model.__name__)} {ident!r} does not exist (deleted?)")
    return found
