"""A faster `registry` fixture for the jobs, verify and publish tests.

Same contract as tests/conftest.py's (a Registry on an SQLite file and on PostgreSQL), but one
PostgreSQL database per test module, emptied before each test, instead of one per test: creating
and migrating a database costs about a second on this machine, and these tests are many.
"""

from __future__ import annotations

import uuid

import pytest


@pytest.fixture(scope="module")
def module_pg_url(pg_server):
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    from registry import migrate
    from registry.db import make_engine

    name = f"ar_m_{uuid.uuid4().hex[:12]}"
    admin = create_engine(pg_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = make_url(pg_server).set(database=name).render_as_string(hide_password=False)
    eng = make_engine(url)
    migrate.upgrade(eng)
    eng.dispose()
    yield url
    with admin.connect() as c:
        c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


def _empty(url: str) -> None:
    from registry.db import Base, make_engine

    eng = make_engine(url)
    with eng.begin() as c:  # DELETE, not TRUNCATE: on tables this small it is ten times faster
        for t in reversed(Base.metadata.sorted_tables):
            c.execute(t.delete())
    eng.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def registry(request, tmp_path, settings_for):
    """A Registry on a fresh SQLite file, and on an emptied PostgreSQL database."""
    from registry.app import Registry

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'catalog.db'}"
    else:
        url = request.getfixturevalue("module_pg_url")
        _empty(url)
    reg = Registry(settings_for(url))
    yield reg
    reg.close()
