"""How one caller sees jobs and workers over HTTP (the API and the pages alike).

Kept apart from the route modules so the pages can use it without importing a router.
"""

from __future__ import annotations

import dataclasses
import re
from typing import TypeVar

from registry import types as T
from registry.api.auth import Caller
from registry.errors import Forbidden

_X = TypeVar("_X")

# An absolute path: a "/" that starts a string or follows a space, a quote, a bracket or "=" (not a
# word, ".", ":" or "/", so "1/2", "team-a/bot" and URLs stay), or the one after "dir://".
_PATH = re.compile(r"(?:(?<![\w.:/~-])|(?<=[a-z]://))/[^\s'\"()\[\]<>,;:]+")
REDACTED = "<server path>"


def redact_paths(value: _X) -> _X:
    """`value` with every absolute filesystem path in its strings (nested in dicts and lists too)
    replaced by "<server path>"."""
    if isinstance(value, str):
        return _PATH.sub(REDACTED, value)  # type: ignore[return-value]
    if isinstance(value, dict):
        return {k: redact_paths(v) for k, v in value.items()}  # type: ignore[return-value]
    if isinstance(value, (list, tuple)):
        return type(value)(redact_paths(v) for v in value)
    return value


def shown(job: T.Job, caller: Caller) -> T.Job:
    """The job as this caller may see it: in full for the unrestricted admin, else without server paths."""
    if caller.registry.core.is_operator:
        return job
    return dataclasses.replace(job, error=redact_paths(job.error), errors=redact_paths(job.errors),
                               result=redact_paths(job.result))


def base_shown(base: T.BaseModel, caller: Caller) -> T.BaseModel:
    """A base as this caller may see it: its server-side location only for the unrestricted admin."""
    if caller.registry.core.is_operator:
        return base
    return dataclasses.replace(base, location=redact_paths(base.location))


def check_workers(caller: Caller) -> None:
    """Workers are infrastructure, not catalog: with closed reads only admin tokens list them."""
    if not caller.open_reads and not (caller.token is not None and caller.token.allows("admin")):
        raise Forbidden("listing workers needs an admin token on this server", scope=caller.token.scope
                        if caller.token else None)
