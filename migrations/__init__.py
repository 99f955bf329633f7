"""Alembic migrations of the catalog (installed as registry.migrations)."""
