"""Fixtures of the release tests: the top-level registries under this directory's names, and six
distinct tiny adapters. Verifications and merged artifacts are recorded with tests/factories.py."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def rel(registry):
    """The top-level `registry` (SQLite and PostgreSQL), as the release tests call it."""
    return registry


@pytest.fixture
def sqlite_rel(sqlite_registry):
    return sqlite_registry


@pytest.fixture(scope="session")
def adapters(models_dir, tiny_llama, tiny_adapter, tiny_adapter2) -> list[Path]:
    """Six distinct adapters of tiny_llama: r=4, r=8 (q,v), then r=16, r=2, r=4, r=8 with other seeds."""
    from registry.testing.tiny import build_adapter

    more = [build_adapter(tiny_llama, models_dir / f"rel-adapter-{i}", r=r, seed=10 + i,
                          target_modules=["q_proj", "v_proj", "o_proj"])
            for i, r in enumerate((16, 2, 4, 8))]
    return [tiny_adapter, tiny_adapter2, *more]
