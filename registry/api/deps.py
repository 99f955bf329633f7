"""FastAPI dependencies (Annotated): the registry, the caller and its access level."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from registry.api import auth
from registry.tokens import TokenInfo

bearer = HTTPBearer(auto_error=False, description="A token from `adapter-registry token create`.")


def get_registry(request: Request):
    return request.app.state.registry


RegistryDep = Annotated[object, Depends(get_registry)]


def get_token(registry: RegistryDep,
              creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> TokenInfo | None:
    return None if creds is None else auth.authenticate(registry, creds.credentials)


TokenDep = Annotated[TokenInfo | None, Depends(get_token)]


def read_access(registry: RegistryDep, token: TokenDep) -> auth.Caller:
    return auth.reader(registry, token)


def write_access(registry: RegistryDep, token: TokenDep) -> auth.Caller:
    return auth.writer(registry, token, "write")


def admin_access(registry: RegistryDep, token: TokenDep) -> auth.Caller:
    return auth.writer(registry, token, "admin")


Reader = Annotated[auth.Caller, Depends(read_access)]
Writer = Annotated[auth.Caller, Depends(write_access)]
Admin = Annotated[auth.Caller, Depends(admin_access)]
