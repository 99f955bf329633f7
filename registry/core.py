"""Core: what every workflow and sub-object needs, built once per Registry.

A Core holds the settings, the catalog database, the artifact store (opened on first use, then
shared) and the actor recorded in the audit log. Workflows, job tasks, release management and
tokens take a Core, never the whole Registry, so the layers below `registry.app` do not depend
on it. `as_actor` returns a Core that shares the database engine and the store and differs only
in the actor; `as_token` also carries the HTTP caller's token (scope and namespace), so that a
workflow can apply per-namespace policy (publish targets, closed reads). A Core that did not come
from `as_token` is the local operator: someone with the catalog's files, trusted like an admin;
one from `as_token(None)` is an anonymous HTTP caller.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import TYPE_CHECKING, Protocol

from registry.db import Database
from registry.settings import Settings

if TYPE_CHECKING:  # pragma: no cover
    from registry.storage.base import BlobStore


class TokenInfo(Protocol):
    """What a Core needs of a token (registry.tokens.TokenInfo; declared here so that core does not
    import tokens, which imports core)."""

    @property
    def name(self) -> str: ...
    @property
    def scope(self) -> str: ...
    @property
    def namespace(self) -> str | None: ...
    def allows(self, scope: str) -> bool: ...
    def owns(self, name: str) -> bool: ...


class _StoreSlot:
    """The store, opened once on first use and shared by every Core derived from one Registry."""

    def __init__(self, settings: Settings):
        self._settings = settings
        self._store: BlobStore | None = None
        self._lock = threading.Lock()

    def get(self) -> BlobStore:
        if self._store is None:
            with self._lock:
                if self._store is None:
                    from registry.storage import open_store

                    s = self._settings
                    self._store = open_store(s.store_url, s3_endpoint=s.s3_endpoint)
        return self._store


class Core:
    """Settings, database, store and actor: the small object the layers below Registry take."""

    def __init__(self, settings: Settings, db: Database, *, _store: _StoreSlot | None = None,
                 token: TokenInfo | None = None, remote: bool = False):
        self.settings = settings
        self.db = db
        self.actor = settings.actor_name
        self.token = token  # the HTTP caller's token (None: anonymous, or the local operator)
        self.remote = remote  # True for an HTTP caller (as_token), False for the local operator
        self._store = _store or _StoreSlot(settings)

    @classmethod
    def open(cls, settings: Settings, *, upgrade: bool | None = None) -> Core:
        """Connect to the catalog and make sure its schema is at head (upgrading SQLite when allowed)."""
        from registry import migrate

        db = Database(settings.db_url)
        auto = settings.auto_upgrade if upgrade is None else upgrade
        migrate.ensure_head(db.engine, allow_upgrade=auto and db.sqlite)
        return cls(settings, db)

    @property
    def store(self) -> BlobStore:
        return self._store.get()

    def as_actor(self, actor: str) -> Core:
        """The same database and store, with `actor` recorded as who acts."""
        return self.with_settings(dataclasses.replace(self.settings, actor=actor))

    def as_token(self, token: TokenInfo | None) -> Core:
        """The same database and store as seen by an HTTP caller: `token`'s name is the actor (when a
        token is given) and its scope and namespace bound what workflows let it do."""
        settings = dataclasses.replace(self.settings, actor=token.name) if token is not None else self.settings
        return Core(settings, self.db, _store=self._store, token=token, remote=True)

    @property
    def is_operator(self) -> bool:
        """True for the local operator or an HTTP caller with an unrestricted admin token."""
        t = self.token
        return not self.remote or (t is not None and t.allows("admin") and t.namespace is None)

    def with_settings(self, settings: Settings) -> Core:
        """The same database and store under other settings (the HTTP app's open_reads, limits)."""
        return Core(settings, self.db, _store=self._store, token=self.token, remote=self.remote)

    def close(self) -> None:
        self.db.dispose()
