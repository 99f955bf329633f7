"""FastAPI dependencies (Annotated): the registry, the caller and its access level.

They are `async def` because they do no I/O of their own (FastAPI would otherwise hop to the
thread pool once per dependency per request); the one database lookup, a presented token, runs in
the thread pool explicitly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from registry.api import auth
from registry.tokens import TokenInfo

if TYPE_CHECKING:  # pragma: no cover
    from registry.app import Registry

bearer = HTTPBearer(auto_error=False, description="A token from `adapter-registry token create`.")


async def get_registry(request: Request) -> Registry:
    registry: Registry = request.app.state.registry
    return registry


RegistryDep = Annotated["Registry", Depends(get_registry)]


async def get_token(request: Request, registry: RegistryDep,
                    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> TokenInfo | None:
    """The caller's token: the one a middleware already authenticated for this request
    (`request.state.token`, so a token is looked up once), else looked up here."""
    known = getattr(request.state, "token", None)
    if isinstance(known, TokenInfo):
        return known
    if creds is None:
        return None
    token = await run_in_threadpool(auth.authenticate, registry, creds.credentials)
    request.state.token = token
    return token


TokenDep = Annotated[TokenInfo | None, Depends(get_token)]


async def read_access(registry: RegistryDep, token: TokenDep) -> auth.Caller:
    return auth.reader(registry, token)


async def write_access(registry: RegistryDep, token: TokenDep) -> auth.Caller:
    return auth.writer(registry, token, "write")


async def admin_access(registry: RegistryDep, token: TokenDep) -> auth.Caller:
    return auth.writer(registry, token, "admin")


Reader = Annotated[auth.Caller, Depends(read_access)]
Writer = Annotated[auth.Caller, Depends(write_access)]
Admin = Annotated[auth.Caller, Depends(admin_access)]
