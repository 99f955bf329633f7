"""Who is calling: the bearer token, checked against the catalog, and what it may do.

Reads are open when `settings.open_reads` is on (a token that is sent must still be valid);
writes always need a token with the write scope, and a namespace-limited token can only write
names inside its namespace. With closed reads, a namespace-limited token also reads only its
namespace (search is narrowed to it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from registry.errors import Forbidden, Unauthorized
from registry.tokens import TokenInfo, read_prefix, require

if TYPE_CHECKING:  # pragma: no cover
    from registry.app import Registry


@dataclass(frozen=True)
class Caller:
    """The registry as seen by one request: its token (None when anonymous) and the actor view."""

    registry: Registry
    token: TokenInfo | None
    open_reads: bool

    @property
    def actor(self) -> str:
        return self.token.name if self.token else "anonymous"

    def can_read(self, name: str) -> None:
        """Raise Forbidden when reads are closed and `name` is outside the token's namespace."""
        if not self.open_reads and self.token is not None and not self.token.owns(name):
            raise Forbidden(f"token {self.token.name!r} is limited to {self.token.namespace}/*, not {name!r}",
                            namespace=self.token.namespace)

    def read_namespace(self) -> str | None:
        """The name prefix reads are narrowed to, or None (registry.tokens.read_prefix: one rule)."""
        return read_prefix(self.registry.core)

    def can_write(self, name: str | None = None, *, scope: str = "write") -> None:
        require(self.token, scope, name=name)


def authenticate(registry: Registry, secret: str | None) -> TokenInfo:
    return registry.tokens.authenticate(secret)


def reader(registry: Registry, token: TokenInfo | None) -> Caller:
    if token is None and not registry.settings.open_reads:
        raise Unauthorized("reads need a bearer token on this server",
                           hint="pass --token or set ADAPTER_REGISTRY_TOKEN")
    if token is not None and not token.allows("read"):
        raise Forbidden("the token cannot read")
    return Caller(registry.as_token(token), token, registry.settings.open_reads)


def writer(registry: Registry, token: TokenInfo | None, scope: str = "write") -> Caller:
    """A caller whose writes are recorded under the token's name (Registry.as_token)."""
    token = require(token, scope)
    return Caller(registry.as_token(token), token, registry.settings.open_reads)
