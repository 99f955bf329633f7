"""Publish targets and base roots per namespace (admin scope; changes need an admin without a namespace)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Path, Query
from pydantic import BaseModel, Field

from registry.api.deps import Admin
from registry.api.errors import responses
from registry.api.render import json
from registry.targets import Target

router = APIRouter(prefix="/api/v1", tags=["admin"])

Kind = Literal["publish", "base"]


@router.get("/targets", response_model=list[Target], responses=responses(401, 403, 422))
def list_targets(caller: Admin, namespace: Annotated[str | None, Query(max_length=100)] = None,
                 kind: Annotated[Kind | None, Query()] = None):
    """Publish targets and base roots, oldest first; with `namespace`, those that apply to it (its
    own and the global ones). An admin limited to a namespace sees only those of its namespace."""
    core = caller.registry.core
    if not core.is_operator and caller.token is not None:
        namespace = caller.token.namespace
    return json(caller.registry.targets.list(namespace=namespace, kind=kind))


class TargetIn(BaseModel):
    url: str = Field(max_length=2000, description="dir:///root, s3://bucket/prefix or hf://org (publish); "
                                                  "dir:///root (base)")
    namespace: str | None = Field(default=None, max_length=100, description="The namespace it is for (null: every one)")
    kind: Kind = Field(default="publish", description="publish: where versions may be published; "
                                                      "base: where base models may be registered from")
    options: dict[str, Any] = Field(default_factory=dict, description='hf:// only: {"private": false} creates '
                                                                      "public repos (default: private)")


@router.post("/targets", response_model=Target, status_code=201, responses=responses(400, 401, 403, 409, 422))
def add_target(body: Annotated[TargetIn, Body()], caller: Admin):
    """Add a publish target or base root (an admin without a namespace)."""
    t = caller.registry.targets.add(body.url, namespace=body.namespace, kind=body.kind,
                                          options=body.options)
    return json(t, 201)


@router.delete("/targets/{id}", response_model=Target, responses=responses(401, 403, 404, 422))
def remove_target(id: Annotated[int, Path(ge=1, le=2**62, description="Target id")], caller: Admin):
    """Remove a publish target or base root by id (an admin without a namespace); returns it."""
    return json(caller.registry.targets.remove(id))
