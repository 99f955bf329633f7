"""Run the catalog's Alembic migrations from the installed package or a checkout."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from sqlalchemy import Engine, inspect

from registry.errors import RegistryError


def migrations_dir() -> Path:
    """The migrations folder: `registry/migrations` in a wheel, `migrations/` in a checkout."""
    spec = importlib.util.find_spec("registry.migrations")
    if spec and spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0])
    here = Path(__file__).resolve().parent.parent / "migrations"
    if (here / "env.py").exists():
        return here
    raise RegistryError("the migrations folder is missing from this installation")


def alembic_config(url: str, connection=None):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    from alembic import command

    with engine.begin() as conn:
        command.upgrade(alembic_config(str(engine.url), conn), revision)


def downgrade(engine: Engine, revision: str) -> None:
    from alembic import command

    with engine.begin() as conn:
        command.downgrade(alembic_config(str(engine.url), conn), revision)


def current(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def check(engine: Engine) -> list:
    """Differences between the models and the database (empty = no drift)."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from registry.catalog import models  # noqa: F401
    from registry.db import Base

    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(ctx, Base.metadata)


def is_empty(engine: Engine) -> bool:
    return not inspect(engine).get_table_names()
