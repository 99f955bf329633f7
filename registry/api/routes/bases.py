"""Base models: list, show, and registration by reference (a folder the server can read)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query
from pydantic import BaseModel, Field

from registry import types as T
from registry.api import views
from registry.api.deps import Reader, Writer
from registry.api.errors import responses
from registry.api.render import json
from registry.catalog import convert
from registry.catalog import queries as Q
from registry.errors import BaseModelNotFound

router = APIRouter(prefix="/api/v1", tags=["base models"])


@router.get("/bases", response_model=list[T.BaseModel], responses=responses(401, 403, 422))
def list_bases(caller: Reader, name: Annotated[str | None, Query(max_length=200)] = None):
    """Every registered base model (all revisions) the caller may see, by name (with closed reads, a
    namespaced token sees the bases named in its namespace or used by its versions)."""
    with caller.registry.db.read() as s:
        bases = Q.list_bases(s, name, namespace=caller.read_namespace())
    return json([views.base_shown(b, caller) for b in bases])


@router.get("/bases/{ref:path}", response_model=T.BaseModel, responses=responses(400, 401, 403, 404, 409, 422))
def show_base(ref: str, caller: Reader):
    """One base model: NAME (newest revision), NAME@REVISION, a fingerprint prefix or a Hub id (its
    bases visible to the caller first; 409 when still several names match; 404 when the caller's
    closed reads do not reach it, as for one that does not exist)."""
    ns = caller.read_namespace()
    with caller.registry.db.read() as s:
        row = Q.get_base(s, ref, namespace=ns)  # a Hub id: the caller's namespace's base first
        if ns is not None and not Q.visible_base_ids(s, [row.id], ns):
            raise BaseModelNotFound(f"no base model {ref!r}", ref=ref)
        b = convert.base_model(row)
    return json(views.base_shown(b, caller))


class BaseIn(BaseModel):
    name: str = Field(max_length=200, description="Base model name, e.g. llama-3-8b")
    path: str = Field(max_length=4096, description="A Hugging Face model folder on the server's filesystem, "
                                                   "under a base root of the name's namespace")
    revision: str | None = Field(default=None, max_length=200)
    hub_id: str | None = Field(default=None, max_length=96, description="The Hub repo id the folder holds, with "
                                                                      "its casing, e.g. Meta-Llama/Llama-3.2-1B")
    store_weights: bool = Field(default=False, description="Copy the weights into the artifact store")
    full_hash: bool = Field(default=False, description="Hash every weight byte (default: sizes and samples)")


@router.post("/bases", response_model=T.BaseModel, status_code=201,
             responses={200: {"model": T.BaseModel, "description": "Already registered"},
                        **responses(400, 401, 403, 404, 422)})
def add_base(body: Annotated[BaseIn, Body()], caller: Writer):
    """Register a base model by reference: the server fingerprints a folder it can read (the weights
    stay where they are). The folder must be under a base root of the name's namespace
    (`adapter-registry target add dir:///root --kind base`); an admin without a namespace may name
    any folder but the registry's own."""
    caller.can_write(body.name)
    folder = caller.registry.targets.check_base_path(body.name, body.path)
    b = caller.registry.add_base(folder, name=body.name, revision=body.revision, store_weights=body.store_weights,
                                 full_hash=body.full_hash, hub_id=body.hub_id)
    return json(b, 201 if b.created else 200)
