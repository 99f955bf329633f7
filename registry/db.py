"""Engine, sessions and the declarative Base.

SQLite (the embedded default) runs in WAL mode with a busy timeout; write transactions begin with
`BEGIN IMMEDIATE` so that two writers serialise at the start of the transaction instead of failing
half-way with "database is locked" when one tries to upgrade its read lock.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import Engine, MetaData, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

# Alembic and the database agree on constraint names on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


_immediate: contextvars.ContextVar[bool] = contextvars.ContextVar("immediate", default=False)


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def make_engine(url: str, *, pool_size: int = 5) -> Engine:
    """An engine for `url`; SQLite files get WAL, a busy timeout and BEGIN IMMEDIATE for writes."""
    if is_sqlite(url):
        db = make_url(url).database
        if db and db != ":memory:":
            Path(db).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn, _record):  # pragma: no cover - trivial
            # Take transaction control from pysqlite so BEGIN can be IMMEDIATE.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn):
            conn.exec_driver_sql("BEGIN IMMEDIATE" if _immediate.get() else "BEGIN")

        return engine
    # No pre-ping: it costs a round trip per session (a third of a `show` on PostgreSQL);
    # connections are recycled hourly instead, and a dropped one fails one request, not many.
    return create_engine(url, pool_size=pool_size, max_overflow=10, pool_recycle=3600)


class Database:
    """Owns the engine and hands out read and write sessions."""

    def __init__(self, url: str):
        self.url = url
        self.engine = make_engine(url)
        self.sqlite = is_sqlite(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # Lookups on PostgreSQL run without BEGIN/ROLLBACK: two fewer round trips out of six
        # for a `show`. Each statement still sees committed data; callers must not need one
        # snapshot across statements (nor take locks: use read() for that).
        self._autocommit = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        self._lookups = self._sessions if self.sqlite else sessionmaker(self._autocommit, expire_on_commit=False)
        self._postgres = self.engine.dialect.name == "postgresql"
        self._epoch = 0  # SQLite: data_token's count of changes seen (see there)
        self._epoch_lock = threading.Lock()
        self._watch: sqlite3.Connection | None = None
        self._watch_pid = 0
        self._watch_path = ""
        self._watch_inode = (0, 0)
        self._seen: int | None = None
        self._snapshot_sql: str | None = None  # PostgreSQL: data_token's statement (see there)

    def data_token(self) -> tuple[Any, ...] | None:
        """A value that stays the same only while no transaction commits anything to the catalog
        (from this process or any other), and that orders: a later token is never less than an
        earlier one. An answer read after a token was taken may be reused for as long as the token
        is unchanged (the API's response cache). None where the backend cannot tell.

        PostgreSQL: the current snapshot (`pg_current_snapshot()`: xmin, xmax and the transactions
        in progress), which names exactly which commits a read sees; any commit in the cluster
        changes it, xmax never goes back and the list of transactions in progress only shrinks
        while xmax stays. (One server: a URL naming several hosts, or a replica that lags, would
        compare snapshots of different servers.) SQLite: how many times `PRAGMA data_version` has
        changed on a connection of this process's own that never writes, opened on the file the
        pool's connections opened (`PRAGMA database_list`) and held beside the pool, under a lock:
        it changes once another connection, any of the pool's included, has committed. A new
        watching connection (after a fork, `dispose()`, an error, or the file replaced under the
        same name) counts as a change.
        """
        if self._postgres:
            with self._autocommit.connect() as c:  # one statement, no BEGIN / ROLLBACK
                if self._snapshot_sql is None:  # the server's version is known once connected
                    old = (c.dialect.server_version_info or (13,)) < (13,)
                    self._snapshot_sql = f"SELECT {'txid' if old else 'pg'}_current_snapshot()::text"
                snap = c.exec_driver_sql(self._snapshot_sql).scalar()
            xmin, xmax, xip = str(snap).split(":")
            return (int(xmax), int(xmin), -len([x for x in xip.split(",") if x]), snap)
        if not self.sqlite:
            return None
        with self._epoch_lock:
            try:
                return self._sqlite_token()
            except (sqlite3.Error, OSError):  # locked out, file gone: this answer is just not kept
                self._drop_watch()
                return None

    def _sqlite_token(self) -> tuple[Any, ...] | None:
        """data_token on SQLite; the caller holds `_epoch_lock`."""
        if self._watch is not None and (self._watch_pid != os.getpid()  # a forked process opens its own
                                        or _inode(self._watch_path) != self._watch_inode):  # file replaced
            self._drop_watch()
        if self._watch is None:
            raw = self.engine.raw_connection()  # the file the pool's connections really opened
            try:
                rows = raw.driver_connection.execute("PRAGMA database_list").fetchall()  # type: ignore[union-attr]
            finally:
                raw.close()
            path = next((r[2] for r in rows if r[1] == "main"), "")
            if not path:
                return None  # in memory or temporary: no other connection sees the same database
            # mode=rw: a file that is gone is an error here, not a new empty database
            self._watch = sqlite3.connect(f"file:{quote(path)}?mode=rw", uri=True, check_same_thread=False,
                                          isolation_level=None, timeout=5)
            self._watch_pid, self._watch_path, self._seen = os.getpid(), path, None
            self._watch_inode = _inode(path)
        # fetchall: the statement runs to its end, so no read transaction stays open on this
        # connection (one would pin the WAL and hide later commits from data_version)
        version = self._watch.execute("PRAGMA data_version").fetchall()[0][0]
        if version != self._seen:
            self._seen = version
            self._epoch += 1
        return (self._epoch,)

    def _drop_watch(self) -> None:
        """Forget the watching connection (closed, unless it was inherited through fork: a
        connection must not be used, closed included, in another process than its own; it is
        kept referenced so that it is never finalised here). The next token opens a new one and
        counts a change, since nothing is known of what happened in between."""
        if self._watch is not None:
            if self._watch_pid == os.getpid():
                with contextlib.suppress(sqlite3.Error):
                    self._watch.close()
            else:
                _INHERITED.append(self._watch)
        self._watch = None

    @contextlib.contextmanager
    def read(self) -> Iterator[Session]:
        with self._sessions() as s:
            yield s

    @contextlib.contextmanager
    def lookup(self) -> Iterator[Session]:
        """A read session for point lookups and searches (no transaction on PostgreSQL)."""
        with self._lookups() as s:
            yield s

    @contextlib.contextmanager
    def write(self) -> Iterator[Session]:
        """A write transaction: committed on success, rolled back on any error."""
        token = _immediate.set(True)
        try:
            with self._sessions() as s, s.begin():
                yield s
        finally:
            _immediate.reset(token)

    def dispose(self) -> None:
        self.engine.dispose()
        with self._epoch_lock:
            self._drop_watch()


_INHERITED: list[sqlite3.Connection] = []  # watching connections of a parent process, never touched


def _inode(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino
