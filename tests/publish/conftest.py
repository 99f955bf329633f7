"""Fixtures: see tests/jobs/fixtures.py."""

from tests.jobs.fixtures import module_pg_url, registry  # noqa: F401
