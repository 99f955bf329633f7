"""A faster `registry` fixture for the jobs, verify and publish tests.

Same contract as tests/conftest.py's (a Registry on an SQLite file and on PostgreSQL), but one
PostgreSQL database per test module, emptied before each test, instead of one per test: creating
and migrating a database costs about a second on this machine, and these tests are many.
"""

from __future__ import annotations

import pytest

from tests.conftest import empty_catalog, module_pg_url  # noqa: F401  (re-exported for conftests)


def _empty(url: str) -> None:
    empty_catalog(url)


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
