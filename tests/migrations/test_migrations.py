"""Migrations equal the models, and downgrade/upgrade round-trips, on SQLite and PostgreSQL."""

from sqlalchemy import inspect

from registry import migrate
from registry.db import make_engine


def test_upgrade_head_has_no_drift_from_the_models(blank_db_url):
    eng = make_engine(blank_db_url)
    migrate.upgrade(eng)
    assert migrate.current(eng) == migrate.head()
    assert migrate.check(eng) == []
    eng.dispose()


def test_downgrade_to_base_and_upgrade_again_round_trips(blank_db_url):
    eng = make_engine(blank_db_url)
    migrate.upgrade(eng)
    tables = set(inspect(eng).get_table_names())
    migrate.downgrade(eng, "base")
    assert set(inspect(eng).get_table_names()) <= {"alembic_version"}
    migrate.upgrade(eng)
    assert set(inspect(eng).get_table_names()) == tables and migrate.check(eng) == []
    eng.dispose()


def test_first_use_of_an_empty_sqlite_file_upgrades_it(tmp_path, settings_for):
    from registry.app import Registry

    reg = Registry(settings_for(f"sqlite:///{tmp_path / 'fresh.db'}"))
    assert migrate.current(reg.db.engine) == migrate.head()
    reg.close()


def test_postgres_is_not_upgraded_implicitly(pg_url, settings_for):
    import pytest

    from registry.app import Registry
    from registry.errors import RegistryError

    with pytest.raises(RegistryError, match="schema is at nothing") as e:
        Registry(settings_for(pg_url))
    assert "adapter-registry db upgrade" in e.value.hint
