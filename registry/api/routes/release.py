"""Release management: aliases (with their gates and history), deprecation, the event feed."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path, Query
from pydantic import BaseModel, Field

from registry import types as T
from registry.api.deps import Reader, Writer
from registry.api.errors import responses
from registry.api.render import json
from registry.release import types as RT

router = APIRouter(prefix="/api/v1", tags=["release"])
Alias = Annotated[str, Path(max_length=64, description="An alias, e.g. production")]
WRITE_ERRORS = responses(400, 401, 403, 404, 409, 422)


@router.get("/adapters/{name:path}/aliases/history", response_model=list[RT.AliasMove],
            responses=responses(400, 401, 403, 404, 422))
def alias_history(name: str, caller: Reader, alias: Annotated[str | None, Query(max_length=64)] = None,
                  limit: Annotated[int | None, Query(ge=1, le=10000)] = None):
    """Every move of the adapter's aliases (from, to, who, when, why, overridden), oldest first."""
    caller.can_read(name)
    return json(caller.registry.release.alias_history(name, alias, limit=limit))


@router.get("/adapters/{name:path}/aliases", response_model=list[RT.AliasInfo],
            responses=responses(400, 401, 403, 404, 422))
def list_aliases(name: str, caller: Reader):
    """The adapter's aliases, protected ones evaluated against their promotion policy."""
    caller.can_read(name)
    caller.registry.adapter(name)  # 404 for an unknown adapter rather than an empty list
    return json(caller.registry.release.aliases(name))


class AliasIn(BaseModel):
    version: int | str = Field(description="A version number, 'v3', another alias or 'latest'")
    reason: str | None = Field(default=None, max_length=2000)
    force: bool = Field(default=False, description="Move past failing gates (admin scope; recorded)")


@router.put("/adapters/{name:path}/aliases/{alias}", response_model=RT.AliasChange, responses=WRITE_ERRORS)
def set_alias(name: str, alias: Alias, body: Annotated[AliasIn, Body()], caller: Writer):
    """Point NAME@ALIAS at a version. A protected alias refuses a version that fails its gates (409)."""
    caller.can_write(name, scope="admin" if body.force else "write")
    version = body.version if isinstance(body.version, int) else str(body.version)[:64]
    return json(caller.registry.release.set_alias(name, alias, version, reason=body.reason, force=body.force))


@router.delete("/adapters/{name:path}/aliases/{alias}", response_model=RT.AliasChange, responses=WRITE_ERRORS)
def remove_alias(name: str, alias: Alias, caller: Writer,
                 reason: Annotated[str | None, Query(max_length=2000)] = None, force: bool = False):
    """Remove an alias (a protected one only with force, admin scope)."""
    caller.can_write(name, scope="admin" if force else "write")
    return json(caller.registry.release.remove_alias(name, alias, reason=reason, force=force))


class DeprecateIn(BaseModel):
    reason: str | None = Field(default=None, max_length=2000)
    successor: str | None = Field(default=None, max_length=300, description="NAME@VERSION to use instead")


@router.post("/adapters/{name:path}/versions/{ref}/deprecate", response_model=T.AdapterVersion,
             responses=WRITE_ERRORS)
def deprecate(name: str, ref: str, caller: Writer, body: Annotated[DeprecateIn, Body()] = DeprecateIn()):
    """Deprecate a version: search hides it unless asked, resolve warns and names the successor."""
    caller.can_write(name)
    return json(caller.registry.release.deprecate(f"{name}@{ref}", successor=body.successor, reason=body.reason))


@router.get("/events", response_model=list[T.EventInfo], responses=responses(400, 401, 403, 422))
def events(caller: Reader, after: Annotated[int, Query(ge=0, le=2**62)] = 0,
           limit: Annotated[int, Query(ge=1, le=1000)] = 100,
           kind: Annotated[list[str], Query(description="Event kinds, or families like 'alias.'")] = []):
    """Catalog events with id > after, oldest first (poll with the last id you saw)."""
    return json(caller.registry.release.events(after, limit, kinds=kind))
