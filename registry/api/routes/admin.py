"""Admin: tokens over HTTP and the audit log (admin scope).

An admin token limited to a namespace administers that namespace only: it creates tokens limited
to it (never with a larger scope than its own), lists and revokes only its tokens, and reads only
the audit entries of its names and tokens (registry/tokens.py says who may do what).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from registry import types as T
from registry.api.deps import Admin
from registry.api.errors import responses
from registry.api.render import json
from registry.catalog import queries as Q
from registry.enums import Scope
from registry.tokens import NewToken, TokenInfo

router = APIRouter(prefix="/api/v1", tags=["admin"])


@router.get("/tokens", response_model=list[TokenInfo], responses=responses(401, 403, 422))
def list_tokens(caller: Admin, revoked: Annotated[bool, Query(description="Include revoked tokens.")] = False):
    """Tokens (never their secrets)."""
    return json(caller.registry.tokens.list(include_revoked=revoked))


class TokenIn(BaseModel):
    name: str = Field(max_length=200)
    scope: Scope
    namespace: str | None = Field(default=None, max_length=100, description="Limit to names NAMESPACE/*")


@router.post("/tokens", response_model=NewToken, status_code=201, responses=responses(400, 401, 403, 409, 422))
def create_token(body: Annotated[TokenIn, Body()], caller: Admin):
    """Create a token. The secret is in this response only."""
    return json(caller.registry.tokens.create(body.name, scope=body.scope, namespace=body.namespace), 201)


@router.delete("/tokens/{token_id}", response_model=TokenInfo, responses=responses(400, 401, 403, 404, 422))
def revoke_token(token_id: Annotated[int, Path(ge=1, le=2**31 - 1, description="Token id")], caller: Admin):
    """Revoke an active token by id (a number is never taken as a name)."""
    return json(caller.registry.tokens.revoke(token_id))


@router.delete("/tokens", response_model=TokenInfo, responses=responses(400, 401, 403, 404, 422))
def revoke_token_by_name(caller: Admin, name: Annotated[str, Query(min_length=1, max_length=200,
                                                                   description="Token name")]):
    """Revoke the active token with this name."""
    return json(caller.registry.tokens.revoke(name=name))


@router.get("/audit", response_model=list[T.AuditEntry], responses=responses(401, 403, 422))
def audit(caller: Admin, limit: Annotated[int, Query(ge=1, le=1000)] = 100,
          target: Annotated[str | None, Query(max_length=500)] = None):
    """Who did what, newest first (a namespaced admin: entries of its namespace's names and tokens)."""
    token = caller.token
    with caller.registry.db.read() as s:
        return json(Q.audit(s, limit=limit, target=target, namespace=token.namespace if token else None))


@router.get("/healthz", include_in_schema=True, tags=["meta"], responses=responses(422))
def healthz() -> JSONResponse:
    """Liveness: answers without touching the catalog."""
    return JSONResponse({"status": "ok"})
