"""Admin: tokens over HTTP and the audit log (admin scope)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from registry import types as T
from registry.api.deps import Admin
from registry.api.errors import responses
from registry.api.render import json
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


@router.delete("/tokens/{token}", response_model=TokenInfo, responses=responses(400, 401, 403, 404, 422))
def revoke_token(token: Annotated[str, Path(max_length=200, description="Token name or id")], caller: Admin):
    """Revoke an active token by name or id."""
    return json(caller.registry.tokens.revoke(token))


@router.get("/audit", response_model=list[T.AuditEntry], responses=responses(401, 403, 422))
def audit(caller: Admin, limit: Annotated[int, Query(ge=1, le=1000)] = 100,
          target: Annotated[str | None, Query(max_length=500)] = None):
    """Who did what, newest first."""
    return json(caller.registry.audit(limit=limit, target=target))


@router.get("/healthz", include_in_schema=True, tags=["meta"], responses=responses(422))
def healthz() -> JSONResponse:
    """Liveness: answers without touching the catalog."""
    return JSONResponse({"status": "ok"})
