"""Run the catalog's Alembic migrations from the installed package or a checkout."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import DBAPIError

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

    rev = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    if rev is None:
        raise RegistryError("the migrations folder has no revisions (a broken installation)")
    return rev


_REVISION = re.compile(r"^(down_)?revision\b[^=]*=\s*['\"]?([\w-]+|None)['\"]?", re.M)


def head_fast() -> str | None:
    """The head revision read from the migration files as text (no alembic import).

    None when the files do not form one linear chain; callers then ask alembic (`head()`).
    """
    revs: dict[str, str | None] = {}
    for f in (migrations_dir() / "versions").glob("*.py"):
        found = {bool(m.group(1)): m.group(2) for m in _REVISION.finditer(f.read_text())}
        if False in found:
            revs[found[False]] = None if found.get(True) in (None, "None") else found.get(True)
    heads = set(revs) - {d for d in revs.values() if d}
    return heads.pop() if len(heads) == 1 else None


def current_fast(engine: Engine) -> str | None:
    """The catalog's revision from alembic's version table with one SELECT (None: no table)."""
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    except DBAPIError:
        return None
    return rows[0] if len(rows) == 1 else None


def ensure_head(engine: Engine, *, allow_upgrade: bool) -> None:
    """Make sure the catalog schema is at head: one SELECT when it is (alembic is not imported);
    otherwise upgrade it (when allowed) or raise with the command that does.

    Raises:
        RegistryError: the schema is behind (or ahead) and `allow_upgrade` is False
    """
    head_rev = head_fast()
    if head_rev is not None and current_fast(engine) == head_rev:
        return
    cur, head_rev = current(engine), head()
    if cur == head_rev:
        return
    if allow_upgrade:
        upgrade(engine)
        return
    raise RegistryError(f"the catalog schema is at {cur or 'nothing'}, this version needs {head_rev}",
                        hint="run: adapter-registry db upgrade")


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
