"""API tokens: bearer secrets stored as sha256 hashes, with a scope and an optional namespace.

A token is printed once, at creation; the catalog keeps only its hash. Scopes nest
(read < write < admin). A namespace limit "team-a" lets the token act on names "team-a/*" only.
Every create and revoke lands in the audit log.

Who administers tokens: the local operator (a Core not from `as_token`) and an unrestricted admin
token administer every token. An admin token limited to a namespace creates tokens of at most its
own scope limited to exactly its namespace, and lists and revokes only tokens of that namespace
(others look absent to it). No token creates a token with a larger scope than its own.
"""

from __future__ import annotations

import builtins
import datetime as dt
import hashlib
import re
import secrets
from dataclasses import dataclass

from sqlalchemy import ColumnElement, select

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
        caller = self._administrator()
        if caller is not None:
            check_grant(caller, scope, namespace)
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
        """Tokens, oldest first (a namespaced admin sees only those of its namespace)."""
        with self.core.db.read() as s:
            q = select(M.ApiToken).where(*self._administered()).order_by(M.ApiToken.id)
            if not include_revoked:
                q = q.where(M.ApiToken.revoked_at.is_(None))
            return [_info(r) for r in s.scalars(q)]

    def revoke(self, token_id: int | str | None = None, *, name: str | None = None) -> TokenInfo:
        """Revoke the active token with this id, or (with `name=`) this name; never one for the other.

        A string of digits is an id; any other string passed as `token_id` can only be a name and is
        taken as one (ids are numbers), so `revoke("ci")` still revokes the token named ci.

        Raises:
            InvalidInput: neither or both given
            TokenNotFound: no such active token (or one outside a namespaced admin's namespace)
        """
        if isinstance(token_id, str) and not token_id.isdigit():
            token_id, name = (None, token_id) if name is None else (token_id, name)
        if (token_id is None) == (name is None):
            raise InvalidInput("give a token id or --name NAME (not both)",
                               hint="list tokens with: adapter-registry token ls")
        if token_id is not None and not str(token_id).isdigit():
            raise InvalidInput(f"invalid token id {token_id!r}", hint="a token id is a number; use --name for names")
        actor = self.core.actor
        with self.core.db.write() as s:
            T = M.ApiToken
            q = select(T).where(T.revoked_at.is_(None), *self._administered())
            q = q.where(T.id == int(token_id)) if token_id is not None else q.where(T.name == name)
            row = s.scalar(q.limit(1))
            if row is None:
                what = f"with id {token_id}" if token_id is not None else f"named {name!r}"
                raise TokenNotFound(f"no active token {what}", token=str(token_id if token_id is not None else name),
                                    hint="list tokens with: adapter-registry token ls")
            row.revoked_at = M.utcnow()
            C.record(s, actor, "token.revoke", f"token:{row.name}", {"id": row.id, "namespace": row.namespace})
            return _info(row)

    def _administrator(self) -> TokenInfo | None:
        """The HTTP caller's token, checked to be an admin; None for the local operator."""
        if not self.core.remote:
            return None
        token = self.core.token
        return require(token if isinstance(token, TokenInfo) else None, "admin")

    def _administered(self) -> builtins.list[ColumnElement[bool]]:
        """The condition on tokens this caller administers (none: every token)."""
        caller = self._administrator()
        if caller is None or caller.namespace is None:
            return []
        return [M.ApiToken.namespace == caller.namespace]

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


def check_grant(caller: TokenInfo, scope: str, namespace: str | None) -> None:
    """Raise Forbidden unless `caller` may create a token with `scope` and `namespace`: at most its
    own scope, and, for a namespaced caller, exactly its namespace."""
    if not caller.allows(scope):
        raise Forbidden(f"token {caller.name!r} has scope {caller.scope}; it cannot create a {scope} token",
                        scope=caller.scope)
    if caller.namespace is not None and namespace != caller.namespace:
        raise Forbidden(f"token {caller.name!r} is limited to {caller.namespace}/*; it creates only tokens "
                        f"limited to {caller.namespace}", namespace=caller.namespace,
                        hint=f"pass namespace {caller.namespace}")


def read_prefix(core: Core) -> str | None:
    """The name prefix ("team-a/") that `core`'s reads are narrowed to, or None for no narrowing.

    Reads are narrowed for an HTTP caller whose token is limited to a namespace, when the server's
    reads are closed (with open reads the catalog is public, so there is nothing to narrow).
    """
    t = core.token
    if not core.remote or core.settings.open_reads or t is None or t.namespace is None:
        return None
    return t.namespace + "/"


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
