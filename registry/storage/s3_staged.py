"""Files sent to an S3 blob store in the background while their writer goes on, none visible until `commit`.

The merge engine hashes each shard while writing it, then hands it here (`add`) and merges the
next one while this uploads it: a multipart upload keyed by the digest the writer computed, so
nothing is hashed again (S3 checks each part's CRC32 in transit; the sha256 is the writer's) and
nothing is copied locally. Parts are read with pread from a descriptor opened in `add`, so the
writer may rename the file's folder meanwhile; at most `workers` parts are in memory at once.

Nothing becomes visible before `commit`: it waits for every part, checks each upload's size on
the server's side (ListParts) against the writer's, then completes them (create-if-absent: a blob
another writer stored meanwhile stays as it is and this upload is aborted). `abort`, and any
error before `commit` completes anything, aborts every upload begun, so an interrupted merge
leaves no object behind (an upload abandoned by a killed process stays invisible; a bucket
lifecycle rule for incomplete multipart uploads reclaims it). The completions run in parallel:
when one of them fails (or the process dies among them), the blobs already completed stay as
content-addressed objects that no catalog row references (nothing serves them; gc deletes them
after its grace period) and the rest are aborted.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from registry.errors import IntegrityFailure, StorageError, translate_os_error
from registry.storage.digest import check_digest
from registry.storage.s3 import MAX_PARTS, S3BlobStore, translate


@dataclass
class _Upload:
    """One file on its way: its descriptor, its multipart upload and the parts sent so far."""

    path: Path
    digest: str
    size: int
    fd: int
    skip_present: bool
    upload_id: str | None = None
    present: bool = False  # the store already held the blob when the upload would have begun
    begun: Future[None] | None = None
    parts: list[Future[dict[str, Any]]] = field(default_factory=list)


class StagedUploads:
    """Uploads to one S3 store, begun as files are added, made visible together by `commit`."""

    def __init__(self, store: S3BlobStore, *, workers: int = 4):
        self.store = store
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="s3-staged")
        self._lock = threading.Lock()
        self._uploads: dict[str, _Upload] = {}
        self._cancelled = False
        self._failed: BaseException | None = None  # the first error of a background upload

    def add(self, path: Path, digest: str, size: int, *, skip_present: bool = False) -> None:
        """Begin uploading `path` (`size` bytes that hash to `digest`, as its writer computed) in the background.

        With `skip_present`, a blob the store already holds is not uploaded again; the caller must have
        marked it in use first (the gc protocol, registry/workflows/ingest.py). Thread-safe; returns at once.
        """
        check_digest(digest)
        if self._failed is not None:  # fail the writer now, not after it has written everything
            raise self._failed
        with self._lock:
            if self._cancelled:
                raise StorageError("staged uploads were aborted", key=self.store.key(digest))
            if digest in self._uploads:  # the same bytes twice (two identical files): one blob
                return
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError as e:
                raise translate_os_error(e, path=str(path)) from e
            up = _Upload(Path(path), digest, size, fd, skip_present)
            self._uploads[digest] = up
            up.begun = self._pool.submit(self._begin, up)
            up.begun.add_done_callback(self._note)

    def _note(self, f: Future[Any]) -> None:
        if not f.cancelled() and f.exception() is not None and self._failed is None:
            self._failed = f.exception()

    def _begin(self, up: _Upload) -> None:
        key = self.store.key(up.digest)
        if up.skip_present and self.store.exists(up.digest):
            up.present = True
            return
        if up.size == 0:  # no part to send: commit puts the empty object (S3 wants a part per upload)
            return
        try:
            upload_id = self.store.client.create_multipart_upload(
                Bucket=self.store.bucket, Key=key, ChecksumAlgorithm="CRC32")["UploadId"]
        except (ClientError, BotoCoreError) as e:
            raise _translate(e, op="create multipart upload", key=key) from e
        with self._lock:
            up.upload_id = upload_id
            if self._cancelled:  # abort() ran while this upload was being created
                return
            step = max(self.store.part_size, -(-up.size // MAX_PARTS))
            for number, offset in enumerate(range(0, up.size, step), 1):
                part = self._pool.submit(self._part, up, number, offset, min(step, up.size - offset))
                part.add_done_callback(self._note)
                up.parts.append(part)

    def _part(self, up: _Upload, number: int, offset: int, length: int) -> dict[str, Any]:
        key = self.store.key(up.digest)
        data = _pread(up, offset, length)
        try:
            r = self.store.client.upload_part(Bucket=self.store.bucket, Key=key, UploadId=up.upload_id,
                                              PartNumber=number, Body=data, ChecksumAlgorithm="CRC32")
        except (ClientError, BotoCoreError) as e:
            raise _translate(e, op=f"upload part {number} of", key=key) from e
        return {"PartNumber": number, "ETag": r["ETag"], "ChecksumCRC32": r["ChecksumCRC32"]}

    def commit(self) -> dict[str, bool]:
        """Wait for every upload, check its size on the server, complete them all: {digest: created}.

        Raises:
            IntegrityFailure: an upload does not hold the writer's size (nothing of it becomes visible)
            StorageError: S3 failed
        Every upload not completed is aborted when it raises.
        """
        try:
            ups = self._settle()
            # every upload checked before any blob becomes visible; each step one request per file, in parallel
            list(self._pool.map(self._check_size, [up for up in ups if up.upload_id is not None]))
            created = dict(zip((up.digest for up in ups), self._pool.map(self._make_visible, ups), strict=True))
        except BaseException:
            self.abort()
            raise
        self._close()
        return created

    def _settle(self) -> list[_Upload]:
        with self._lock:
            ups = list(self._uploads.values())
        for up in ups:
            assert up.begun is not None  # set in add()
            up.begun.result()
        for up in ups:
            for part in up.parts:
                part.result()
        return ups

    def _check_size(self, up: _Upload) -> None:
        key = self.store.key(up.digest)
        held = 0
        try:
            pages = self.store.client.get_paginator("list_parts").paginate(
                Bucket=self.store.bucket, Key=key, UploadId=up.upload_id)
            for page in pages:
                held += sum(int(p["Size"]) for p in page.get("Parts", []))
        except (ClientError, BotoCoreError) as e:
            raise _translate(e, op="list parts of", key=key) from e
        if held != up.size:
            raise IntegrityFailure(f"the upload of {key} holds {held} bytes, its writer wrote {up.size}",
                                   key=key, digest=up.digest)

    def _make_visible(self, up: _Upload) -> bool:
        key = self.store.key(up.digest)
        if up.present:
            return False
        if up.upload_id is None:  # an empty file: nothing to hash, one create-if-absent put
            return self.store.put_file(up.path, expected=up.digest).created
        parts = [f.result() for f in up.parts]
        made = self.store.complete(key, up.upload_id, parts)
        if not made:  # another writer stored these bytes first: this upload stays open unless aborted
            self.store.abort_upload(key, up.upload_id)
        up.upload_id = None
        return made

    def abort(self) -> None:
        """Stop what is queued, wait for what runs, and abort every upload begun. Idempotent."""
        with self._lock:
            self._cancelled = True
        self._pool.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            ups = list(self._uploads.values())
        for up in ups:
            if up.upload_id is not None:
                self.store.abort_upload(self.store.key(up.digest), up.upload_id)
                up.upload_id = None
        self._close()

    def _close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            for up in self._uploads.values():
                if up.fd >= 0:
                    os.close(up.fd)
                    up.fd = -1


def staged_uploads(store: Any, *, workers: int = 4) -> StagedUploads | None:
    """Staged uploads to `store` when it is an S3 blob store of ours, else None (the caller stores another way)."""
    return StagedUploads(store, workers=workers) if isinstance(store, S3BlobStore) else None


def _pread(up: _Upload, offset: int, length: int) -> bytes:
    chunks, got = [], 0
    try:
        while got < length:
            b = os.pread(up.fd, length - got, offset + got)
            if not b:
                raise IntegrityFailure(f"{up.path.name} ended at {offset + got} bytes, its writer wrote {up.size}",
                                       path=str(up.path), digest=up.digest)
            chunks.append(b)
            got += len(b)
    except OSError as e:
        raise translate_os_error(e, path=str(up.path)) from e
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _translate(e: Exception, *, op: str, key: str) -> StorageError:
    err = translate(e, op=op, key=key)
    assert isinstance(err, StorageError)  # no digest given: never BlobNotFound
    return err
