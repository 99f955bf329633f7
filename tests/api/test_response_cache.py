"""The read routes' response cache (registry/api/cache.py) and the data token it keys on
(registry/db.py `Database.data_token`), on SQLite and PostgreSQL: a repeated search, version or
adapter runs
none of its statements and answers the same bytes as an uncached server; every commit, through
this server, through another connection or process, or through a plain sqlite3 connection, is in
the next answer; callers narrowed to different namespaces never share an answer; ETag and
If-None-Match give 304."""

from __future__ import annotations

import dataclasses
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import event, text

from tests.factories import bearer, fill_registry, make_tokens

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def reg(db_url, settings_for, tiny_llama, tiny_adapter, tiny_adapter2):
    from registry.app import Registry

    r = Registry(settings_for(db_url))
    fill_registry(r, tiny_llama, tiny_adapter, tiny_adapter2)
    yield r
    r.close()


def _client(reg, **settings):
    from fastapi.testclient import TestClient

    from registry.api import create_app

    return TestClient(create_app(reg, dataclasses.replace(reg.settings, **settings) if settings else None))


class Statements:
    """The SQL statements an engine runs (SQLAlchemy's cursor events: what goes through it)."""

    def __init__(self, engine):
        self.seen: list[str] = []
        event.listen(engine, "before_cursor_execute", self._on)

    def _on(self, conn, cursor, statement, *args):
        self.seen.append(statement)

    def take(self) -> list[str]:
        out, self.seen = self.seen, []
        return out


SEARCHES = ["/api/v1/adapters", "/api/v1/adapters?base=tiny-llama&limit=20", "/api/v1/adapters?name=team-a/",
            "/api/v1/adapters?metric=acc>=0.6&sort=metric:acc", "/api/v1/adapters?count=true&limit=1&offset=1"]
SHOWS = ["/api/v1/adapters/team-a/bot/versions/1", "/api/v1/adapters/team-a/bot/versions/latest",
         "/api/v1/adapters/team-a/bot"]


def test_a_repeated_answer_runs_none_of_its_statements_and_is_the_uncached_answer(reg, db_url):
    with _client(reg) as cached, _client(reg, response_cache_bytes=0) as plain:
        stmts = Statements(reg.db.engine)
        for path in SEARCHES + SHOWS:
            first = cached.get(path)
            assert first.status_code == 200, first.text
            ran = stmts.take()
            assert len(ran) >= 2, (path, ran)
            again = cached.get(path)
            # the token only: PostgreSQL's snapshot; SQLite's pragma goes to a connection of its own
            assert stmts.take() == ([] if db_url.startswith("sqlite") else ["SELECT pg_current_snapshot()::text"])
            for _ in range(2):  # the uncached server reads every time
                uncached = plain.get(path)
                assert len(stmts.take()) >= 2
            assert again.content == first.content == uncached.content, path
            assert again.headers["content-type"] == uncached.headers["content-type"] == "application/json"
            assert again.headers["etag"] == first.headers["etag"] == uncached.headers["etag"]
            assert again.headers["cache-control"] == "private, no-cache"
        assert cached.app.state.response_cache.hits == len(SEARCHES + SHOWS)
        assert plain.app.state.response_cache.hits == 0


def _acc(client, path="/api/v1/adapters/team-a/bot/versions/1"):
    return client.get(path).json()["metrics"].get("acc")


def _names(client, path="/api/v1/adapters?limit=100", headers=None):
    r = client.get(path, headers=headers or {})
    assert r.status_code == 200, r.text
    return sorted(f'{v["name"]}@{v["version"]}' for v in r.json()["items"])


def test_a_commit_through_the_server_is_in_the_next_answer(reg):
    tokens = make_tokens(reg)
    with _client(reg) as c:
        assert _acc(c) == 0.5 and _acc(c) == 0.5
        r = c.post("/api/v1/adapters/team-a/bot/versions/1/evals", json={"metrics": {"acc": 0.9}},
                   headers=bearer(tokens.write))
        assert r.status_code == 201, r.text
        assert _acc(c) == 0.9
        path = "/api/v1/adapters?metric=f1>=0.2"
        assert c.get(path).json()["items"] == [] and c.get(path).json()["items"] == []
        reg.add_eval("team-b/bot@1", {"f1": 0.3})  # the same pool, from this thread: its connection's total_changes
        assert [v["name"] for v in c.get(path).json()["items"]] == ["team-b/bot"]


def test_a_commit_through_another_connection_or_process_is_in_the_next_answer(reg, db_url, settings_for, tiny_adapter):
    from registry.app import Registry

    with _client(reg) as c:
        before = _names(c)
        assert _names(c) == before
        assert c.get("/api/v1/adapters/team-a/bot").json()["aliases"] == {}
        other = Registry(settings_for(db_url))  # its own engine and pool: another process as far as SQLite can tell
        other.push(tiny_adapter, name="team-c/new", base="tiny-llama")
        assert _names(c) == sorted([*before, "team-c/new@1"])
        other.release.set_alias("team-a/bot", "prod", 2)
        assert c.get("/api/v1/adapters/team-a/bot").json()["aliases"] == {"prod": 2}
        assert c.get("/api/v1/adapters/team-a/bot/versions/prod").json()["version"] == 2
        other.release.set_alias("team-a/bot", "prod", 1)
        assert c.get("/api/v1/adapters/team-a/bot").json()["aliases"] == {"prod": 1}
        assert c.get("/api/v1/adapters/team-a/bot/versions/prod").json()["version"] == 1
        other.close()
        # A real second process, through the CLI.
        env = {"ADAPTER_REGISTRY_DB": db_url, "ADAPTER_REGISTRY_HOME": str(reg.settings.home),
               "ADAPTER_REGISTRY_STORE": reg.settings.store_url, "PATH": "/usr/bin:/bin"}
        done = subprocess.run([sys.executable, "-m", "registry", "deprecate", "team-c/new@1", "--reason", "old"],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert _names(c) == before  # deprecated versions leave the default search
        if db_url.startswith("sqlite"):  # a connection SQLAlchemy knows nothing of
            raw = sqlite3.connect(reg.settings.db_url.removeprefix("sqlite:///"))
            with raw:
                raw.execute("UPDATE metric_values SET value = 0.25 WHERE value = 0.5")
            raw.close()
            assert c.get("/api/v1/adapters?metric=acc<0.3").json()["items"][0]["name"] == "team-a/bot"


def test_a_commit_made_while_an_answer_is_read_is_in_the_next_answer(reg, db_url, settings_for):
    """The token is taken before the answer is read: an answer read around a commit is kept under
    the token from before it, which the commit has moved on (were the token taken after reading,
    SQLite's read snapshot would keep the old answer under the new token)."""
    from registry.db import Database

    other = Database(settings_for(db_url).db_url)
    fired = []

    def commit_once(conn, cursor, statement, *_args):
        if not fired and statement.lstrip().upper().startswith("SELECT"):
            fired.append(1)
            with other.write() as s:
                s.execute(text("UPDATE metric_values SET value = 0.95 WHERE value = 0.7"))

    path = "/api/v1/adapters?metric=acc>=0.9"
    with _client(reg) as c:
        event.listen(reg.db.engine, "after_cursor_execute", commit_once)
        try:
            c.get(path)  # the commit lands after this search's first query
        finally:
            event.remove(reg.db.engine, "after_cursor_execute", commit_once)
        assert fired
        assert [f'{v["name"]}@{v["version"]}' for v in c.get(path).json()["items"]] == ["team-a/bot@2"]
    other.dispose()


def test_callers_narrowed_to_different_namespaces_never_share_an_answer(reg):
    tokens = make_tokens(reg)
    team_b = reg.tokens.create("team-b-reader", scope="read", namespace="team-b").token
    with _client(reg, open_reads=False) as c:
        for _ in range(2):
            assert _names(c, headers=bearer(tokens.team_a)) == ["team-a/bot@1", "team-a/bot@2"]
            assert _names(c, headers=bearer(team_b)) == ["team-b/bot@1"]
            assert _names(c, headers=bearer(tokens.read)) == ["team-a/bot@1", "team-a/bot@2", "team-b/bot@1"]
        assert c.get("/api/v1/adapters/team-a/bot/versions/1", headers=bearer(team_b)).status_code == 403
        assert c.get("/api/v1/adapters/team-a/bot/versions/1", headers=bearer(tokens.team_a)).status_code == 200
        assert c.get("/api/v1/adapters/team-a/bot/versions/1", headers=bearer(team_b)).status_code == 403
        assert c.get("/api/v1/adapters").status_code == 401


def test_if_none_match_gets_304_until_the_answer_changes(reg):
    with _client(reg) as c:
        path = "/api/v1/adapters?base=tiny-llama"
        r = c.get(path)
        etag = r.headers["etag"]
        assert etag.startswith('"') and etag.endswith('"')
        for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
            again = c.get(path, headers={"If-None-Match": header})
            assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag, header
        assert c.get(path, headers={"If-None-Match": '"other"'}).status_code == 200
        reg.add_eval("team-a/bot@2", {"acc": 0.8})
        changed = c.get(path, headers={"If-None-Match": etag})
        assert changed.status_code == 200 and changed.headers["etag"] != etag
        assert 0.8 in [v["metrics"].get("acc") for v in changed.json()["items"]]


def test_the_data_token_moves_with_every_commit_and_only_then(reg, db_url, settings_for):
    from registry.db import Database

    db = reg.db
    t0 = db.data_token()
    assert t0 is not None and db.data_token() == t0 == db.data_token()
    with db.write() as s:  # through this process's own pool
        s.execute(text("UPDATE adapters SET description = 'x' WHERE name = 'team-a/bot'"))
    t1 = db.data_token()
    assert t1 > t0 and db.data_token() == t1
    other = Database(settings_for(db_url).db_url)
    with other.write() as s:
        s.execute(text("UPDATE adapters SET description = 'y' WHERE name = 'team-a/bot'"))
    t2 = db.data_token()
    assert t2 > t1 and db.data_token() == t2
    with other.read() as s:  # reads commit nothing
        s.execute(text("SELECT count(*) FROM adapters")).scalar()
    assert db.data_token() == t2
    other.dispose()
    if db_url.startswith("sqlite"):  # the watching connection keeps no read transaction open (it would pin the WAL)
        raw = sqlite3.connect(db_url.removeprefix("sqlite:///"))
        assert raw.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()[0][0] == 0  # 0: not blocked by a reader
        raw.close()


def test_sqlite_tokens_follow_the_file_the_pool_opened(tmp_path):
    """The watching connection opens the file SQLAlchemy's connections opened (a URI filename,
    a query string), none for a database in memory; after dispose(), an error or a fork it is
    opened again and counts a change."""
    from registry.db import Database

    for url in (f"sqlite:///file:{tmp_path}/u.db?mode=rwc&uri=true", f"sqlite:///{tmp_path}/plain.db"):
        db = Database(url)
        with db.write() as s:
            s.execute(text("CREATE TABLE t (x INTEGER)"))
        t0 = db.data_token()
        assert t0 is not None and db.data_token() == t0
        with db.write() as s:
            s.execute(text("INSERT INTO t VALUES (1)"))
        t1 = db.data_token()
        assert t1 > t0, url
        db.dispose()
        assert db.data_token() > t1  # a new watching connection: nothing is known of what came between
        db.dispose()
    assert not (tmp_path / "u.db?mode=rwc").exists() and (tmp_path / "u.db").exists()
    memory = Database("sqlite://")
    assert memory.data_token() is None
    memory.dispose()


def test_a_replaced_database_file_moves_the_token(tmp_path):
    import shutil

    from registry.db import Database

    db = Database(f"sqlite:///{tmp_path}/c.db")
    with db.write() as s:
        s.execute(text("CREATE TABLE t (x INTEGER)"))
    t0 = db.data_token()
    shutil.copyfile(tmp_path / "c.db", tmp_path / "restored.db")
    (tmp_path / "restored.db").replace(tmp_path / "c.db")  # a restore under the running server
    assert db.data_token() > t0
    db.dispose()


def test_a_token_taken_before_a_newer_one_does_not_empty_the_cache():
    from registry.api.cache import ResponseCache

    cache = ResponseCache(1 << 20)
    t4, t5, t6 = (4,), (5,), (6,)
    assert cache._get(t5, "k") is None
    cache._put(t5, "k", b"{}", '"e"')
    assert cache._get(t5, "k") == (b"{}", '"e"')
    assert cache._get(t4, "k") is None and cache._get(t5, "k") == (b"{}", '"e"')  # older: a miss only
    cache._put(t4, "k2", b"[]", '"f"')  # read under an older token: not kept
    assert cache._get(t5, "k2") is None
    assert cache._get(t6, "k") is None  # newer: everything before it is gone
    for i in range(40):  # bounded by the bytes of its bodies
        cache._put(t6, i, b"x" * 100_000, '"g"')
    assert cache._size <= 1 << 20 and cache._get(t6, 39) is not None and cache._get(t6, 0) is None
    # many tiny answers under long keys (a query string can be kilobytes): the keys count too
    for i in range(20_000):
        cache._put(t6, ("search", "x" * 4000, i), b"[]", '"h"')
    assert cache._size <= 1 << 20 and len(cache._entries) < (1 << 20) // 4000


def test_postgresql_snapshots_order_so_an_older_one_only_misses(migrated_pg_url):
    from registry.db import Database

    db = Database(migrated_pg_url)
    t0 = db.data_token()
    with db.write() as s:
        s.execute(text("SELECT txid_current()"))  # a transaction id, committed: the snapshot moves
    t1 = db.data_token()
    assert t1 is not None and t0 is not None and t1 > t0 and db.data_token() == t1
    # A transaction with an id held open while a later one commits: the snapshot lists the open one
    # (same xmax once it ends, a later xmin); handing out an id alone moves nothing.
    with db.engine.connect() as held:
        held.exec_driver_sql("SELECT txid_current()")
        assert db.data_token() == t1
        with db.write() as s:
            s.execute(text("SELECT txid_current()"))
        t2 = db.data_token()
        assert t2 is not None and t2 > t1 and t2[2] < 0  # the held transaction is in progress
        held.commit()
    t3 = db.data_token()
    assert t3 is not None and t3 > t2
    db.dispose()
