"""workflows.ingest is the one way into the store: push, merge and add_base --store-weights all
mark their blobs as in use *before* storing them, as the gc protocol requires."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select, update

from registry.catalog import models as M


def _age(reg, hours: float) -> None:
    with reg.db.write() as s:
        s.execute(update(M.Blob).values(created_at=M.utcnow() - dt.timedelta(hours=hours)))


def _young(reg, digests: set[str], since: dt.datetime) -> bool:
    """Every blob's row was (re)written at `since` or later (compared as naive UTC: SQLite drops tzinfo)."""
    with reg.db.read() as s:
        rows = dict(s.execute(select(M.Blob.digest, M.Blob.created_at)).all())
    return all(rows[d].replace(tzinfo=None) >= since.replace(tzinfo=None) for d in digests)


def test_storing_base_weights_refreshes_blobs_that_gc_could_already_judge_old(sqlite_registry, tiny_llama):
    """add_base(store_weights=True) used to put blobs and only then insert their rows, leaving an
    existing row's age as it was: a gc that had judged that old blob unreferenced could delete it
    under the new base."""
    reg = sqlite_registry
    first = reg.add_base(tiny_llama, name="a", revision="1", store_weights=True)
    _age(reg, 48)  # past any grace period
    start = M.utcnow()
    reg.add_base(tiny_llama, name="b", revision="1", store_weights=True)
    digests = _stored(reg, "b")
    assert digests and first.weights_stored
    assert _young(reg, digests, start)


def _stored(reg, name: str) -> set[str]:
    with reg.db.read() as s:
        files = s.scalar(select(M.BaseModelRow.files).where(M.BaseModelRow.name == name))
    return {v["digest"] for v in files.values() if v.get("digest")}


def test_a_push_of_known_files_refreshes_their_blobs_too(sqlite_registry, tiny_llama, tiny_adapter):
    reg = sqlite_registry
    reg.add_base(tiny_llama, name="tiny")
    v = reg.push(tiny_adapter, name="a", base="tiny")
    _age(reg, 48)
    start = M.utcnow()
    reg.push(tiny_adapter, name="b", base="tiny")
    assert _young(reg, {f.digest for f in v.files}, start)
