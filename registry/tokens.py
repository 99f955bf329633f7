"""API tokens: bearer secrets stored as sha256 hashes, with a scope and an optional namespace.

A token is printed once, at creation; the catalog keeps only its hash. Scopes nest
(read < write < admin). A namespace limit "team-a" lets the token act on names "team-a/*" only.
Every create and revoke lands in the audit log.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from dataclasses import dataclass

from sqlalchemy import select

from registry.catalog import commands as C
from registry.catalog import models as M
from registry.core import Core
from registry.enums import Scope
from registry.errors import AlreadyExists, Forbidden, InvalidInput, TokenNotFound, Unauthorized
from registry.types import _Result

SCOPES = tuple(Scope)  # read < write < admin (registry/enums.py says what each allows)
PREFIX = "arg_"
# used with fullmatch: "^...$" with match() admits a trailing newline
NAMESPACE_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,99}")
TOKEN_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,199}")
TOUCH_EVERY_S = 60  # last_used_at is a hint, not a log: write it at most once a minute per token


@dataclass(frozen=True)
class TokenInfo(_Result):
    """A token as the catalog knows it (never the secret)."""

    id: int
    name: str
    scope: str
    namespace: str | None
    created_at: dt.datetime
    created_by: str
    revoked_at: dt.datetime | None
    last_used_at: dt.datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def allows(self, scope: str) -> bool:
        """True when this token's scope includes `scope` (admin > write > read)."""
        return Scope(self.scope).includes(scope)

    def owns(self, name: str) -> bool:
        """True when `name` (an adapter or base model name) is inside this token's namespace."""
        return self.namespace is None or name.startswith(self.namespace + "/")


@dataclass(frozen=True)
class NewToken(_Result):
    """What `create` returns: the only time the secret is shown."""

    token: str
    info: TokenInfo


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _info(row: M.ApiToken) -> TokenInfo:
    return TokenInfo(row.id, row.name, row.scope, row.namespace, row.created_at, row.created_by, row.revoked_at,
                     row.last_used_at)


class Tokens:
    """Token management over one catalog: `reg.tokens`."""

    def __init__(self, core: Core):
        self.core = core

    def create(self, name: str, *, scope: str, namespace: str | None = None) -> NewToken:
        """Create a token; the returned secret is not stored anywhere.

        Raises:
            InvalidInput: bad name, scope or namespace
            AlreadyExists: an active token already has this name
        """
        if not isinstance(name, str) or not TOKEN_NAME_RE.fullmatch(name):
            raise InvalidInput(f"invalid token name {name!r}", hint="token names match [A-Za-z0-9][A-Za-z0-9._@-]*")
        if scope not in SCOPES:
            raise InvalidInput(f"invalid scope {scope!r}", hint="scope is read, write or admin")
        if namespace is not None:
            namespace = namespace.rstrip("/").removesuffix("/*")
            if not NAMESPACE_RE.fullmatch(namespace):
                raise InvalidInput(f"invalid namespace {namespace!r}", hint="a namespace is a name prefix like team-a")
        secret = PREFIX + secrets.token_urlsafe(32)
        actor = self.core.actor
        with self.core.db.write() as s:
            T = M.ApiToken
            if s.scalar(select(T.id).where(T.name == name, T.revoked_at.is_(None))) is not None:
                raise AlreadyExists(f"an active token named {name!r} exists", name=name,
                                    hint="revoke it first, or pick another name")
            row = T(name=name, token_hash=hash_token(secret), scope=scope, namespace=namespace, created_by=actor)
            s.add(row)
            s.flush()
            C.record(s, actor, "token.create", f"token:{name}", {"scope": scope, "namespace": namespace})
            return NewToken(secret, _info(row))

    def list(self, *, include_revoked: bool = False) -> list[TokenInfo]:
        with self.core.db.read() as s:
            q = select(M.ApiToken).order_by(M.ApiToken.id)
            if not include_revoked:
                q = q.where(M.ApiToken.revoked_at.is_(None))
            return [_info(r) for r in s.scalars(q)]

    def revoke(self, name_or_id: str | int) -> TokenInfo:
        """Revoke the active token with this name (or id). Raises TokenNotFound."""
        actor = self.core.actor
        with self.core.db.write() as s:
            T = M.ApiToken
            q = select(T).where(T.revoked_at.is_(None))
            key = str(name_or_id)
            q = q.where((T.name == key) | (T.id == int(key))) if key.isdigit() else q.where(T.name == key)
            row = s.scalar(q.order_by(T.id.desc()).limit(1))
            if row is None:
                raise TokenNotFound(f"no active token {key!r}", token=key,
                                    hint="list tokens with: adapter-registry token ls")
            row.revoked_at = M.utcnow()
            C.record(s, actor, "token.revoke", f"token:{row.name}", {"id": row.id})
            return _info(row)

    def authenticate(self, secret: str | None) -> TokenInfo:
        """The active token with this secret.

        Raises:
            Unauthorized: no secret, an unknown secret or a revoked token
        """
        if not secret:
            raise Unauthorized("a bearer token is required", hint="pass --token or set ADAPTER_REGISTRY_TOKEN")
        h = hash_token(secret)
        with self.core.db.read() as s:
            row = s.scalar(select(M.ApiToken).where(M.ApiToken.token_hash == h))
            if row is None or row.revoked_at is not None:
                raise Unauthorized("the token is unknown or revoked",
                                   hint="create one with: adapter-registry token create")
            info = _info(row)
        now = M.utcnow()
        last = info.last_used_at
        if last is None or (_naive(now) - _naive(last)).total_seconds() > TOUCH_EVERY_S:
            with self.core.db.write() as s:
                row = s.get(M.ApiToken, info.id)
                if row is not None:
                    row.last_used_at = now
        return info


def _naive(t: dt.datetime) -> dt.datetime:
    """UTC without tzinfo (SQLite hands back naive datetimes, PostgreSQL aware ones)."""
    return t.astimezone(dt.timezone.utc).replace(tzinfo=None) if t.tzinfo is not None else t


def require(token: TokenInfo | None, scope: str, *, name: str | None = None) -> TokenInfo:
    """Check that `token` may act with `scope` (on `name`, when given); returns the token.

    Raises:
        Unauthorized: no token
        Forbidden: the scope is too small or the name is outside the token's namespace
    """
    if token is None:
        raise Unauthorized("a bearer token is required", hint="pass --token or set ADAPTER_REGISTRY_TOKEN")
    if not token.allows(scope):
        raise Forbidden(f"token {token.name!r} has scope {token.scope}, this needs {scope}", scope=token.scope)
    if name is not None and not token.owns(name):
        raise Forbidden(f"token {token.name!r} is limited to {token.namespace}/*, not {name!r}",
                        namespace=token.namespace)
    return token
