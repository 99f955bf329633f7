"""Shared fixtures: real SQLite files, a real PostgreSQL, real tiny models. Nothing is mocked.

PostgreSQL: ADAPTER_REGISTRY_TEST_PG (default postgresql+psycopg://postgres@127.0.0.1:5432/test)
names a server; each test gets a fresh database created from it. With
ADAPTER_REGISTRY_REQUIRE_PG=1 (CI) an unreachable server fails the tests instead of skipping them.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from pathlib import Path

import pytest

PG_URL = os.environ.get("ADAPTER_REGISTRY_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REQUIRE_PG = os.environ.get("ADAPTER_REGISTRY_REQUIRE_PG") == "1"


def _pg_admin():
    from sqlalchemy import create_engine

    return create_engine(PG_URL, isolation_level="AUTOCOMMIT")


@pytest.fixture(scope="session")
def pg_server() -> str:
    """The PostgreSQL server URL, checked once (fails in CI, skips elsewhere when unreachable)."""
    try:
        eng = _pg_admin()
        with eng.connect() as c:
            c.exec_driver_sql("select 1")
        eng.dispose()
    except Exception as e:  # pragma: no cover - depends on the machine
        msg = f"PostgreSQL at {PG_URL} is not reachable: {e.__class__.__name__}: {str(e)[:200]}"
        if REQUIRE_PG:
            pytest.fail(msg)
        pytest.skip(msg)
    return PG_URL


@pytest.fixture
def pg_url(pg_server):
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    url = create_database(pg_server, "ar_t")
    yield url
    drop_database(url)


def create_database(server_url: str, prefix: str) -> str:
    """A new, empty PostgreSQL database on the test server; returns its URL."""
    from sqlalchemy.engine import make_url

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = _pg_admin()
    for attempt in range(5):  # parallel test runs can briefly collide on the template database
        try:
            with admin.connect() as c:
                c.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE template0')
            break
        except Exception:
            if attempt == 4:
                raise
            time.sleep(0.5 * (attempt + 1))
    admin.dispose()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def drop_database(url: str) -> None:
    from sqlalchemy.engine import make_url

    admin = _pg_admin()
    with admin.connect() as c:
        c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')
    admin.dispose()


def empty_catalog(url: str) -> None:
    """Remove every row of a migrated catalog (ids restart): milliseconds, where a new database costs seconds."""
    from sqlalchemy import create_engine

    from registry.db import Base

    eng = create_engine(url)
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with eng.begin() as c:
        c.exec_driver_sql(f"TRUNCATE TABLE {tables} RESTART IDENTITY CASCADE")
    eng.dispose()


@contextlib.contextmanager
def migrated_database(server_url: str, prefix: str):
    """A new PostgreSQL database upgraded to head, dropped on exit."""
    from registry import migrate
    from registry.db import make_engine

    url = create_database(server_url, prefix)
    eng = make_engine(url)
    migrate.upgrade(eng)
    eng.dispose()
    try:
        yield url
    finally:
        drop_database(url)


@pytest.fixture(scope="module")
def module_pg_url(pg_server):
    """One migrated PostgreSQL database per test module; tests empty it with empty_catalog()."""
    with migrated_database(pg_server, "ar_m") as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path):
    """Run the test on an SQLite file and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'catalog.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def settings_for(tmp_path):
    """Settings for a registry under tmp_path on the given database URL."""
    from registry.settings import Settings

    def make(db: str, **kw):
        return Settings.from_env(env={}, home=tmp_path / "home", db=db, store=str(tmp_path / "store"),
                                 actor="tester", **kw)

    return make


@pytest.fixture
def registry(db_url, settings_for):
    """A Registry on SQLite and on PostgreSQL (schema upgraded to head)."""
    from registry import migrate
    from registry.app import Registry
    from registry.db import make_engine

    if not db_url.startswith("sqlite"):
        eng = make_engine(db_url)
        migrate.upgrade(eng)
        eng.dispose()
    reg = Registry(settings_for(db_url))
    yield reg
    reg.close()


@pytest.fixture
def sqlite_registry(tmp_path, settings_for):
    from registry.app import Registry

    reg = Registry(settings_for(f"sqlite:///{tmp_path / 'catalog.db'}"))
    yield reg
    reg.close()


# -- tiny real models (built once per session, never downloaded) ----------------------------------
@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def tiny_llama(models_dir) -> Path:
    from registry.testing.tiny import build_llama

    return build_llama(models_dir / "llama")


@pytest.fixture(scope="session")
def tiny_llama_other(models_dir) -> Path:
    """A different base: other hidden size, so shapes do not fit adapters of tiny_llama."""
    from registry.testing.tiny import build_llama

    return build_llama(models_dir / "llama-other", hidden_size=32, intermediate_size=64, seed=3)


@pytest.fixture(scope="session")
def tiny_gpt2(models_dir) -> Path:
    from registry.testing.tiny import build_gpt2

    return build_gpt2(models_dir / "gpt2")


@pytest.fixture(scope="session")
def tiny_adapter(models_dir, tiny_llama) -> Path:
    from registry.testing.tiny import build_adapter

    return build_adapter(tiny_llama, models_dir / "adapter", r=4, seed=1)


@pytest.fixture(scope="session")
def tiny_adapter2(models_dir, tiny_llama) -> Path:
    from registry.testing.tiny import build_adapter

    return build_adapter(tiny_llama, models_dir / "adapter2", r=8, seed=2, target_modules=["q_proj", "v_proj"])


@pytest.fixture(scope="session")
def gpt2_adapter(models_dir, tiny_gpt2) -> Path:
    from registry.testing.tiny import build_adapter

    return build_adapter(tiny_gpt2, models_dir / "gpt2-adapter", r=4, seed=4)


def copy_tree(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


# -- S3 on loopback (moto's real server) -------------------------------------------------------------
@pytest.fixture(scope="session")
def aws_env():
    """Dummy credentials, and no chance of reading a developer's real ones."""
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.startswith("AWS_"):
                mp.delenv(name)
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        mp.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
        yield


@pytest.fixture(scope="session")
def s3_endpoint(aws_env):
    """moto's S3 server on a free loopback port, for the whole session."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def bucket(s3_endpoint):
    """A fresh bucket per test (moto keeps state for the whole session)."""
    import boto3

    name = f"blobs-{uuid.uuid4().hex[:16]}"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(Bucket=name)
    return name


