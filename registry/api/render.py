"""Result types -> JSON responses, in the `to_dict()` shape (registry/types.py `_plain`).

The bytes are those of `JSONResponse(registry.types._plain(obj))` (tests/api/test_fast_paths.py
compares whole responses), made without building that intermediate tree: the standard library's
C encoder walks the tuples, lists, dicts and scalars itself and calls back into Python only for a
result type (its fields, looked up once per class), a datetime or a path. A search page of 20
versions holds ~1,400 values and ~100 objects: the generic walk visited every value in Python.
Dict keys are strings throughout the result types (JSON columns and str-keyed fields), the one
place where the encoder's own key conversion could differ from `_plain`'s `str(key)`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json as _json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi.responses import JSONResponse

from registry import types as T

_Convert = Callable[[Any], Any]
_BY_TYPE: dict[type, _Convert] = {}


def _one_level(v: Any) -> Any:
    """The encoder's `default`: what `_plain` makes of `v`, one level deep (the encoder goes on)."""
    t = type(v)
    convert = _BY_TYPE.get(t)
    if convert is None:
        convert = _converter(t)
    return convert(v)


def _converter(t: type) -> _Convert:
    """How `_plain` treats a value of type `t` that the encoder does not know, in `_plain`'s order
    of checks (a class is a value whose treatment depends on more than its type: generic path)."""
    if issubclass(t, type):
        return _generic
    convert: _Convert
    if issubclass(t, T._Result):
        convert = _fields(t) if t.to_dict is T._Result.to_dict else t.to_dict
    elif dataclasses.is_dataclass(t):
        convert = _fields(t)
    elif issubclass(t, dt.datetime):
        convert = _datetime
    elif issubclass(t, Path):
        convert = str
    else:
        convert = _generic
    _BY_TYPE[t] = convert
    return convert


def _fields(t: type) -> _Convert:
    names = T._field_names(t)
    return lambda v: {n: getattr(v, n) for n in names}


def _datetime(v: dt.datetime) -> str:
    return (v if v.tzinfo is not None else v.replace(tzinfo=dt.timezone.utc)).isoformat()


def _generic(v: Any) -> Any:
    out = T._plain(v)
    if out is v:  # _plain leaves it as it is: json.dumps would refuse it, and so does the encoder
        raise TypeError(f"Object of type {type(v).__name__} is not JSON serializable")
    return out


# JSONResponse's own settings (starlette.responses.JSONResponse.render), plus the callback.
_ENCODER = _json.JSONEncoder(ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":"),
                             default=_one_level)


def encode(obj: Any) -> bytes:
    """The body of `json(obj)`."""
    return _ENCODER.encode(obj).encode("utf-8")


class ResultResponse(JSONResponse):
    """A JSONResponse whose content may hold result types (rendered in their to_dict() shape)."""

    def render(self, content: Any) -> bytes:
        return encode(content)


def json(obj: Any, status: int = 200) -> JSONResponse:
    """A JSON response with the result type's to_dict() shape."""
    return ResultResponse(obj, status_code=status)
