"""Fixtures of the release tests: the top-level registries (SQLite and PostgreSQL), a few distinct
tiny adapters, and helpers that record what other subsystems would (verifications, merged
artifacts, publications) as plain catalog rows."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry.app import Registry


@pytest.fixture
def new_registry():
    """Build another Registry object (its own engine and connections) from settings."""
    return Registry


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


@pytest.fixture
def verify():
    return add_verification


@pytest.fixture
def merged():
    return add_merged


def add_verification(reg, ref: str, *, base: str | None = None, passed: bool = True) -> None:
    """Record a verification result as the verify worker would."""
    from registry.catalog import models as M
    from registry.catalog import queries as Q
    from registry.refs import parse_ref

    with reg.db.write() as s:
        _a, row = Q.get_version(s, parse_ref(ref))
        b = Q.get_base(s, base) if base else row.base_model
        s.add(M.Verification(version_id=row.id, base_model_id=b.id, device_kind="cpu", dtype="float32",
                             passed=passed, figures={}, versions={}))


def add_merged(reg, ref: str, *, files: dict[str, str], base: str | None = None, dtype: str = "float32",
               manifest: str | None = None, publish: bool = False) -> int:
    """Record a merged artifact (files: relpath -> digest), optionally published, as the merge code would."""
    import hashlib

    from registry.catalog import models as M
    from registry.catalog import queries as Q
    from registry.refs import parse_ref

    with reg.db.write() as s:
        _a, row = Q.get_version(s, parse_ref(ref))
        b = Q.get_base(s, base) if base else row.base_model
        key = hashlib.sha256(f"{ref}{b.id}{dtype}{sorted(files.items())}".encode()).hexdigest()
        m = M.MergedArtifact(cache_key=key, version_id=row.id, base_model_id=b.id, dtype=dtype, engine="stream",
                             engine_version="1", manifest_digest=manifest or key,
                             files={p: {"digest": d, "size": 1} for p, d in files.items()})
        s.add(m)
        s.flush()
        if publish:
            s.add(M.Publication(merged_id=m.id, version_id=row.id, target="dir", uri="/tmp/x",
                                manifest_digest=m.manifest_digest))
        return m.id
