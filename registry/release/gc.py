"""Garbage collection of the artifact store: delete only blobs nothing in the catalog references.

References: version files (aliases point at versions, so they are covered), merged artifacts
(their files and manifest), publications (their manifest), and base models (their `files` JSON
holds digests when the weights were stored with --store-weights; all digests there are kept).

Races, and why this is safe with writers running:
- A push or merge uploads its blobs *before* the transaction that references them commits. A blob
  the catalog does not know yet may be such an upload, so gc never deletes a blob on its first
  sighting: it records a `blobs` row for it (first seen = now) and deletes it only in a later run,
  once the row is older than the grace period (default one hour) and still unreferenced.
  Blob rows written by pushes carry their upload time, so fresh uploads are young too.
- References are re-read inside the deleting transaction, with the blob rows locked
  (SELECT ... FOR UPDATE on PostgreSQL; SQLite writers are serialised by BEGIN IMMEDIATE).
  On PostgreSQL a push that is inserting version_files for a digest holds a key-share lock on
  its blob row (the foreign key), so our DELETE waits for it and then fails on the foreign key
  instead of removing a blob that just became referenced; that digest is skipped.
- Remaining window: a writer that *re-uses* an old unreferenced blob (the store says it exists,
  so nothing is uploaded) and commits its reference after gc's re-check. Writers close it by
  calling `touch_blobs` (refresh created_at) in a short transaction before they look in the
  store: gc's locked re-check then sees a young row and keeps the blob, or gc went first, the
  row is gone, and the writer uploads the bytes again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import Path

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from registry.catalog import commands as C
from registry.catalog import models as M
from registry.errors import BlobNotFound
from registry.release import types as RT
from registry.storage.local import sweep_older_than

GRACE_SECONDS = 3600.0
TEMP_MAX_AGE_S = 24 * 3600.0  # the default of settings.temp_max_age_s
BATCH = 200


def aware(t: dt.datetime) -> dt.datetime:
    """SQLite hands datetimes back naive; they were stored as UTC."""
    return t if t.tzinfo is not None else t.replace(tzinfo=dt.timezone.utc)


def _digests_in(files: dict | None) -> Iterable[str]:
    for info in (files or {}).values():
        d = info.get("digest") if isinstance(info, dict) else None
        if d:
            yield d


def referenced_digests(s: Session) -> set[str]:
    """Every digest the catalog references."""
    out = set(s.scalars(select(M.VersionFile.digest).distinct()))
    for files, manifest in s.execute(select(M.MergedArtifact.files, M.MergedArtifact.manifest_digest)):
        out.update(_digests_in(files))
        out.add(manifest)
    out.update(s.scalars(select(M.Publication.manifest_digest)))
    for (files,) in s.execute(select(M.BaseModelRow.files)):
        out.update(_digests_in(files))
    return {d for d in out if d}


def sweep_temp(store, *, home: Path | None = None, older_than_s: float = TEMP_MAX_AGE_S,
               now: float | None = None) -> int:
    """Remove temp files of killed pushes, uploads and store writes untouched for `older_than_s` seconds.

    Swept: everything under `<home>/tmp` (the upload folders of HTTP pushes under tmp/uploads/,
    one per upload) and the store's own temp folder (a local store's in-flight puts). A writer
    that is still running touches its files, so it is younger than any sensible threshold.
    Returns how many entries were removed. The server sweeps at start (registry/demo.py), gc on
    every run.
    """
    removed = 0
    if home is not None:
        tmp = Path(home) / "tmp"
        removed += sweep_older_than(tmp / "uploads", older_than_s=older_than_s, now=now)
        removed += sweep_older_than(tmp, older_than_s=older_than_s, now=now, keep=("uploads",))
    clean = getattr(store, "clean_tmp", None)
    if callable(clean):
        removed += int(clean(older_than_s=older_than_s, now=now))
    return removed


def collect(db, store, *, dry_run: bool = False, grace_seconds: float = GRACE_SECONDS,
            now: dt.datetime | None = None, actor: str = "", home: Path | None = None,
            temp_max_age_s: float = TEMP_MAX_AGE_S) -> RT.GcReport:
    """Delete unreferenced blobs older than the grace period; report what was (or would be) freed.

    Also sweeps stale temp files (sweep_temp: the store's, and `<home>/tmp` when `home` is given),
    except with `dry_run`.
    """
    if not dry_run:
        sweep_temp(store, home=home, older_than_s=temp_max_age_s)
    now = now or M.utcnow()
    cutoff = now - dt.timedelta(seconds=grace_seconds)
    # List the store before reading the catalog: anything uploaded after the listing is not a
    # candidate at all, and anything listed that the catalog does not know is young (first seen).
    in_store = set(store.iter_digests())
    with db.read() as s:
        referenced = referenced_digests(s)
        rows = {d: (size, aware(at)) for d, size, at in s.execute(select(M.Blob.digest, M.Blob.size,
                                                                          M.Blob.created_at))}
    unknown = sorted(in_store - rows.keys())
    if unknown and not dry_run:
        sizes = _sizes(store, unknown)  # outside the write transaction: S3 round trips
        with db.write() as s:
            # A push may have recorded one meanwhile, with its own upload time: that row stays.
            C.insert_ignore(s, M.Blob, [{"digest": d, "size": n, "created_at": now} for d, n in sizes.items()],
                            ["digest"])
    unreferenced = (in_store | rows.keys()) - referenced
    old = sorted(d for d in unreferenced if d in rows and rows[d][1] <= cutoff)
    young = sum(1 for d in unreferenced if d in in_store and d not in old)
    missing = tuple(sorted(d for d in referenced if d not in in_store))
    deleted: list[str] = []
    freed = 0
    if dry_run:
        deleted = [d for d in old if d in in_store]
        freed = sum(rows[d][0] for d in deleted)
    else:
        for i in range(0, len(old), BATCH):
            d_batch, f_batch = _delete_batch(db, store, old[i:i + BATCH], cutoff, in_store)
            deleted += d_batch
            freed += f_batch
        if deleted:
            with db.write() as s:
                C.record(s, actor, "gc.run", "store", {"deleted": len(deleted), "bytes_freed": freed})
    return RT.GcReport(dry_run, grace_seconds, len(in_store), len(referenced & in_store), tuple(deleted), freed,
                       young, missing)


def _sizes(store, digests: list[str]) -> dict[str, int]:
    out = {}
    for d in digests:
        try:
            out[d] = store.size(d)
        except BlobNotFound:
            pass  # deleted since the listing (another gc run)
    return out


def _delete_batch(db, store, digests: list[str], cutoff: dt.datetime, in_store: set[str]) -> tuple[list[str], int]:
    deleted, freed = [], 0
    with db.write() as s:
        locked = list(s.scalars(select(M.Blob).where(M.Blob.digest.in_(digests)).with_for_update()))
        referenced = referenced_digests(s)  # re-read under the lock: references committed since the scan
        for b in locked:
            if b.digest in referenced or aware(b.created_at) > cutoff:
                continue  # referenced now, or touched by a writer since the scan
            try:
                with s.begin_nested():
                    s.execute(delete(M.Blob).where(M.Blob.digest == b.digest))
            except IntegrityError:
                continue  # a version being pushed right now references it (foreign key)
            if b.digest in in_store:
                store.delete(b.digest)
                deleted.append(b.digest)
                freed += b.size
    return deleted, freed
