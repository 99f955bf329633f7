"""Garbage collection: only unreferenced blobs past the grace period go (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import io
import itertools

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import update

from registry.app import Registry
from registry.catalog import models as M
from tests.factories import add_merged


def _age_all(reg, hours: float = 2) -> None:
    with reg.db.write() as s:
        s.execute(update(M.Blob).values(created_at=M.utcnow() - dt.timedelta(hours=hours)))


def _files(reg, ref):
    return {f.digest: f.size for f in reg.show(ref).files}


@pytest.fixture
def two(rel, tiny_llama, adapters):
    rel.add_base(tiny_llama, name="llama")
    rel.push(adapters[0], name="bot", base="llama")
    rel.push(adapters[1], name="bot", base="llama")
    return rel


def test_gc_deletes_blobs_of_a_deleted_version_past_the_grace_period_and_reports_bytes(two):
    keep, gone = _files(two, "bot@1"), _files(two, "bot@2")
    only_gone = {d: n for d, n in gone.items() if d not in keep}
    assert only_gone and len(only_gone) < len(gone)  # README.md is shared and must survive
    two.release.delete_version("bot@2")
    _age_all(two)
    rep = two.release.gc()
    assert set(rep.deleted) == set(only_gone) and rep.bytes_freed == sum(only_gone.values())
    assert not any(two.store.exists(d) for d in only_gone) and all(two.store.exists(d) for d in keep)
    assert (two.resolve("bot@1") / "adapter_model.safetensors").is_file()
    assert two.release.events()[-1].kind == "gc.run" and two.release.gc().deleted == ()


def test_gc_keeps_unreferenced_blobs_inside_the_grace_period(two):
    two.release.delete_version("bot@2")
    rep = two.release.gc()
    assert rep.deleted == () and rep.kept_young >= 1


def test_gc_dry_run_reports_without_deleting(two):
    gone = set(_files(two, "bot@2")) - set(_files(two, "bot@1"))
    two.release.delete_version("bot@2")
    _age_all(two)
    rep = two.release.gc(dry_run=True)
    assert rep.dry_run and set(rep.deleted) == gone and all(two.store.exists(d) for d in gone)


def test_a_blob_seen_for_the_first_time_is_recorded_and_only_deleted_by_a_later_run(two):
    # Looks like a push that uploaded but has not committed: the catalog does not know it yet.
    b = two.store.put_stream(io.BytesIO(b"in flight"))
    assert two.release.gc(grace_seconds=0).deleted == ()
    assert two.release.gc(grace_seconds=3600).deleted == ()
    assert two.release.gc(grace_seconds=0).deleted == (b.digest,)


def test_gc_keeps_blobs_of_merged_artifacts_publications_and_stored_base_weights(two, tiny_llama):
    m = two.store.put_stream(io.BytesIO(b"merged shard")).digest
    man = two.store.put_stream(io.BytesIO(b"manifest")).digest
    pub = two.store.put_stream(io.BytesIO(b"published manifest")).digest
    add_merged(two, "bot@1", files={"model.safetensors": m}, manifest=man)
    with two.db.write() as s:
        p = M.Publication(merged_id=1, version_id=s.get(M.MergedArtifact, 1).version_id, target="dir", uri="/x",
                          manifest_digest=pub)
        s.add(p)
    stored = two.add_base(tiny_llama, name="stored", revision="w", store_weights=True)
    weights = stored_weights(two, "stored")
    assert weights
    two.release.gc(grace_seconds=0)  # first sighting of the unknown blobs
    _age_all(two)
    rep = two.release.gc(grace_seconds=0)
    assert rep.deleted == () and stored.weights_stored
    assert all(two.store.exists(d) for d in (m, man, pub, *weights))


def stored_weights(reg, name: str) -> set[str]:
    from sqlalchemy import select

    with reg.db.read() as s:
        files = s.scalar(select(M.BaseModelRow.files).where(M.BaseModelRow.name == name))
    return {v["digest"] for v in files.values() if v.get("digest")}


def catalog_digests(reg) -> set[str]:
    """The files of every version in the catalog and every digest a base row records."""
    from sqlalchemy import select

    page = reg.search(limit=1000, include_deprecated=True)
    out = {d for v in page.items for d in _files(reg, v.ref)}
    with reg.db.read() as s:
        for files in s.scalars(select(M.BaseModelRow.files)):
            out |= {v["digest"] for v in files.values() if v.get("digest")}
    return out


_example = itertools.count()


@settings(max_examples=6, deadline=None, derandomize=True, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(pushes=st.lists(st.tuples(st.integers(0, 5), st.booleans()), min_size=1, max_size=4),
       orphans=st.lists(st.tuples(st.binary(min_size=1, max_size=32), st.booleans()), min_size=1, max_size=3),
       merge_refs=st.lists(st.integers(0, 3), max_size=2, unique=True),
       store_base=st.booleans(), age=st.booleans(), grace=st.sampled_from([0.0, 3600.0]))
def test_gc_never_deletes_a_referenced_blob(rel, settings_for, db_url, adapters, tiny_llama,
                                            tmp_path, pushes, orphans, merge_refs, store_base, age, grace):
    import dataclasses

    from registry.catalog import commands as C

    n = next(_example)
    reg = Registry(dataclasses.replace(settings_for(db_url), store=str(tmp_path / f"store-{n}")))
    try:
        reg.add_base(tiny_llama, name=f"b{n}", revision="r", store_weights=store_base)
        refs = []
        for i, (which, keep) in enumerate(pushes):
            v = reg.push(adapters[which], name=f"p{n}-{i}", base=f"b{n}")
            if keep:
                refs.append(v.ref)
            else:
                reg.release.delete_version(v.ref, force=True)
        orphan_digests = []
        for data, with_row in orphans:
            d = reg.store.put_stream(io.BytesIO(data)).digest
            orphan_digests.append(d)
            if with_row:
                with reg.db.write() as s:
                    C.add_blobs(s, {d: len(data)})
        # What the catalog references, worked out here independently of release.gc. Hypothesis runs
        # every example on one catalog, so versions and bases of earlier examples count too: a
        # version pushed and deleted here can share its blobs with one an earlier example kept.
        expected = catalog_digests(reg)
        for k in merge_refs if refs else ():
            d = orphan_digests[k % len(orphan_digests)]
            add_merged(reg, refs[k % len(refs)], files={f"x{k}.safetensors": d})
            expected.add(d)
        if age:
            _age_all(reg)
        before = set(reg.store.iter_digests())
        referenced = expected & before
        for _ in range(2):
            rep = reg.release.gc(grace_seconds=grace)
            assert not set(rep.deleted) & referenced
        after = set(reg.store.iter_digests())
        assert referenced <= after
        assert after <= before
        for ref in refs:
            assert reg.resolve(ref).is_dir()
        if grace == 0:  # and everything unreferenced did go, within two runs
            assert after == referenced
    finally:
        reg.close()
