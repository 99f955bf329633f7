"""Shared fixtures: real SQLite files, a real PostgreSQL, real tiny models. Nothing is mocked.

Databases: the catalog is migrated ONCE per run per backend, into a template (an SQLite file, a
PostgreSQL database created with a name unique to the run and dropped at its end), and each test
gets a copy: the SQLite file copied, a PostgreSQL database cloned with CREATE DATABASE ... TEMPLATE.
On PostgreSQL one clone serves a whole module and is emptied before each test (empty_catalog()),
which is cheaper again than a clone per test. Tests that need a database with no schema at all
(the migration tests, `db upgrade`) ask for pg_url / blank_db_url.

PostgreSQL: ADAPTER_REGISTRY_TEST_PG (default postgresql+psycopg://postgres@127.0.0.1:5432/test)
names a server. With ADAPTER_REGISTRY_REQUIRE_PG=1 (CI) an unreachable server fails the tests
instead of skipping them. Helpers for building things are in tests/factories.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

PG_URL = os.environ.get("ADAPTER_REGISTRY_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REQUIRE_PG = os.environ.get("ADAPTER_REGISTRY_REQUIRE_PG") == "1"


# -- PostgreSQL databases: one helper each for creating, emptying and dropping ------------------------
def _pg_admin():
    from sqlalchemy import create_engine

    return create_engine(PG_URL, isolation_level="AUTOCOMMIT")


def create_database(server_url: str, prefix: str, *, template: str = "template0") -> str:
    """A new PostgreSQL database copied from `template` (template0: empty); returns its URL."""
    from sqlalchemy.engine import make_url

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = _pg_admin()
    try:
        for attempt in range(5):
            try:
                with admin.connect() as c:
                    c.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
                break
            except Exception:
                # "source database is being accessed by other users": a parallel run creating from
                # template0 at the same instant, or a connection to our template not yet gone
                if attempt == 4:
                    raise
                time.sleep(0.2 * (attempt + 1))
    finally:
        admin.dispose()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def drop_database(url: str) -> None:
    from sqlalchemy.engine import make_url

    admin = _pg_admin()
    with admin.connect() as c:
        c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')
    admin.dispose()


def empty_catalog(url: str) -> None:
    """Remove every row of a migrated catalog and restart its ids.

    DELETE rather than TRUNCATE: on tables this small DELETE takes a few milliseconds, where
    TRUNCATE (new files for every table and index) takes about 60 ms and a clone about 150 ms.
    Children before parents (reverse dependency order), so no foreign key is ever violated.
    """
    from sqlalchemy import create_engine

    from registry.db import Base

    eng = create_engine(url)
    with eng.begin() as c:
        for t in reversed(Base.metadata.sorted_tables):
            c.exec_driver_sql(f'DELETE FROM "{t.name}"')
        c.exec_driver_sql("SELECT setval(oid::regclass, 1, false) FROM pg_class WHERE relkind = 'S'")
    eng.dispose()


def _migrate(url: str) -> None:
    from registry import migrate
    from registry.db import make_engine

    eng = make_engine(url)
    migrate.upgrade(eng)
    eng.dispose()


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


@pytest.fixture(scope="session")
def pg_template(pg_server):
    """The catalog migrated to head once for this run; every migrated test database is a clone of it.

    The name is unique to the run, so parallel runs on one server never share (or block) a template.
    """
    url = create_database(pg_server, "ar_tmpl")
    _migrate(url)  # the engine is disposed: a connection left on a template would block every clone
    yield url
    drop_database(url)


def clone_template(template_url: str, prefix: str) -> str:
    """A new migrated database, cloned from the run's template."""
    from sqlalchemy.engine import make_url

    return create_database(template_url, prefix, template=make_url(template_url).database)


@pytest.fixture
def pg_url(pg_server):
    """A PostgreSQL database with no schema at all, for one test, dropped afterwards."""
    url = create_database(pg_server, "ar_t")
    yield url
    drop_database(url)


@pytest.fixture(scope="module")
def module_pg_url(pg_template):
    """One clone of the template per test module (tests take it through migrated_pg_url)."""
    url = clone_template(pg_template, "ar_m")
    yield url
    drop_database(url)


@pytest.fixture
def migrated_pg_url(module_pg_url):
    """A migrated PostgreSQL catalog holding no rows (ids start at 1), for one test."""
    empty_catalog(module_pg_url)
    return module_pg_url


# -- SQLite files -------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    """An SQLite catalog migrated to head once for this run (copied per test: ~1 ms, a migration ~35 ms)."""
    path = tmp_path_factory.mktemp("template") / "catalog.db"
    _migrate(f"sqlite:///{path}")
    assert not Path(f"{path}-wal").exists()  # the engine checkpointed on close: the one file is the catalog
    return path


@pytest.fixture
def sqlite_url(tmp_path, sqlite_template) -> str:
    """A migrated SQLite catalog with no rows: tmp_path/catalog.db."""
    path = tmp_path / "catalog.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


# -- catalogs and registries on both backends ---------------------------------------------------------
@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request):
    """A migrated catalog with no rows: on an SQLite file, and on PostgreSQL."""
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "migrated_pg_url")


@pytest.fixture(params=["sqlite", "postgres"])
def blank_db_url(request, tmp_path):
    """A database with no schema: an SQLite file not yet created, and an empty PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'blank.db'}"
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
    """A Registry on SQLite and on PostgreSQL, on an empty migrated catalog."""
    from registry.app import Registry

    reg = Registry(settings_for(db_url))
    yield reg
    reg.close()


@pytest.fixture
def sqlite_registry(sqlite_url, settings_for):
    from registry.app import Registry

    reg = Registry(settings_for(sqlite_url))
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
def trained(models_dir, tiny_llama) -> Path:
    """train() + save_model(): the root has the final adapter and training_args.bin, no trainer_state.json."""
    from registry.testing.tiny import train_trainer_output

    out = models_dir / "trainer-run"
    if not (out / "adapter_config.json").exists():
        train_trainer_output(tiny_llama, out)
    return out


@pytest.fixture(scope="session")
def two_named(models_dir, tiny_llama) -> Path:
    """Two named adapters, none called "default": peft writes sql/ and chat/, nothing at the root."""
    from registry.testing.tiny import save_multi_adapter

    out = models_dir / "multi-named"
    if not out.exists():
        save_multi_adapter(tiny_llama, out, ("sql", "chat"))
    return out


@pytest.fixture(scope="session")
def default_and_named(models_dir, tiny_llama) -> Path:
    """"default" (written at the root) plus "sql" (written into sql/)."""
    from registry.testing.tiny import save_multi_adapter

    out = models_dir / "multi-default"
    if not out.exists():
        save_multi_adapter(tiny_llama, out, ("default", "sql"), seed=1)
    return out


@pytest.fixture(scope="session")
def gpt2_adapter(models_dir, tiny_gpt2) -> Path:
    from registry.testing.tiny import build_adapter

    return build_adapter(tiny_gpt2, models_dir / "gpt2-adapter", r=4, seed=4)


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


@pytest.fixture
def mounted(tmp_path):
    """Mount a file system of `kind` under tmp_path (we are root in CI; a failure to mount fails)."""
    mounts: list[Path] = []

    def mount(kind: str) -> Path:
        mnt = tmp_path / f"mnt-{kind}"
        mnt.mkdir()
        if kind in ("tmpfs", "ramfs"):
            cmd = ["mount", "-t", kind, "-o", "size=4m", kind, str(mnt)]
        elif kind == "xfs":  # reflinks (FICLONE); 300 MiB is mkfs.xfs's smallest, sparse on disk
            if shutil.which("mkfs.xfs") is None:
                why = "mkfs.xfs is not installed (Debian: xfsprogs; .ci/run installs it)"
                if os.environ.get("ADAPTER_REGISTRY_REQUIRE_XFS"):
                    pytest.fail(why)
                pytest.skip(why)
            img = tmp_path / "xfs.img"
            subprocess.run(["truncate", "-s", "300M", str(img)], check=True)
            subprocess.run(["mkfs.xfs", "-q", "-f", str(img)], check=True)
            cmd = ["mount", "-o", "loop", str(img), str(mnt)]
        else:
            img = tmp_path / "disk.img"
            subprocess.run(["truncate", "-s", "8M", str(img)], check=True)
            subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", str(img)], check=True)  # no root reserve
            cmd = ["mount", "-o", "loop", str(img), str(mnt)]
        subprocess.run(cmd, check=True, capture_output=True)
        mounts.append(mnt)
        return mnt

    yield mount
    for m in mounts:
        subprocess.run(["umount", "-l", str(m)], check=False)
