"""Blobs in an S3 bucket (or anything that speaks the S3 API: MinIO, moto).

Layout: `<prefix>/blobs/sha256/<64 hex>`. Credentials and region come from the usual boto3
environment (AWS_ACCESS_KEY_ID, AWS_PROFILE, ...); only the endpoint is passed in.

How a put keeps "a visible blob always matches its digest" without a rename:
  * small blobs (< part_size) are read into one bounded buffer, hashed, compared with the digest
    and only then sent with `IfNoneMatch="*"` (create-if-absent; 412 means another writer already
    stored the same bytes) and `ChecksumSHA256` (S3 rejects bytes damaged in transit);
  * large blobs go up as a multipart upload keyed by the expected digest, hashed part by part; an
    upload is invisible until completed, so on a mismatch (or any error) it is ABORTED, never
    completed. Completion also uses `IfNoneMatch="*"`. A multipart ETag is not a content hash,
    which is why the sha256 is ours.
The key must be known before a multipart upload starts, so a large put without `expected` hashes
first: put_file reads the file twice, put_stream spools it to a local temp file.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from registry.errors import BlobNotFound, InvalidInput, RegistryError, StorageError, translate_os_error
from registry.storage.base import BlobInfo
from registry.storage.digest import (
    CHUNK,
    VerifyingReader,
    check_digest,
    hash_stream,
    is_digest,
    iter_chunks,
    mismatch,
    read_up_to,
    sha256_b64,
)
from registry.storage.fsutil import land_verified, open_source

MiB = 1024 * 1024
MIN_PART = 5 * MiB  # S3's minimum for every part but the last
MAX_PARTS = 10_000


def _status(e: ClientError) -> int:
    return int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def _code(e: ClientError) -> str:
    return str(e.response.get("Error", {}).get("Code", ""))


def _is_missing(e: ClientError) -> bool:
    return _status(e) == 404 or _code(e) in ("404", "NoSuchKey", "NotFound")


def _is_precondition_failed(e: ClientError) -> bool:
    return _status(e) == 412 or _code(e) == "PreconditionFailed"


def _is_write_conflict(e: ClientError) -> bool:
    """AWS answers 409 to the loser of two simultaneous conditional writes of one key."""
    return _status(e) == 409 or _code(e) == "ConditionalRequestConflict"


CONFLICT_WAITS_S = (0.2, 0.5, 1.0, 2.0, 4.0)


def translate(e: Exception, *, op: str, key: str, digest: str | None = None) -> RegistryError:
    """botocore errors -> ours (404 -> BlobNotFound, everything else -> StorageError)."""
    if isinstance(e, ClientError):
        if _is_missing(e) and digest is not None:
            return BlobNotFound(f"blob {digest} is not in the bucket ({key})", digest=digest, key=key)
        msg = e.response.get("Error", {}).get("Message") or str(e)
        return StorageError(f"S3 {op} {key} failed: {_code(e) or _status(e)} {msg}", key=key, op=op)
    return StorageError(f"S3 {op} {key} failed: {e}", key=key, op=op)


class _Body(io.RawIOBase):
    """A botocore StreamingBody whose read errors come out as StorageError."""

    def __init__(self, body: Any, key: str):
        super().__init__()
        self._body, self._key = body, key

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        try:
            data: bytes = self._body.read(None if n is None or n < 0 else n)
            return data
        except (BotoCoreError, OSError) as e:
            raise translate(e, op="read", key=self._key) from e

    def close(self) -> None:
        if not self.closed:
            self._body.close()
            super().close()


class S3BlobStore:
    """Content-addressed blobs in an S3 bucket under a key prefix."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        client: Any = None,
        part_size: int = 8 * MiB,
        spool_dir: Path | None = None,
    ):
        if not bucket:
            raise InvalidInput("S3 store needs a bucket name")
        if part_size < MIN_PART:
            raise InvalidInput(f"part_size must be at least {MIN_PART} bytes (an S3 limit)")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.url = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self.part_size = part_size
        self.spool_dir = spool_dir
        self.client = client or boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            config=Config(retries={"mode": "standard", "max_attempts": 5}),
        )
        self._blob_prefix = f"{self.prefix}/blobs/sha256/" if self.prefix else "blobs/sha256/"

    @classmethod
    def from_url(cls, url: str, *, s3_endpoint: str | None = None) -> S3BlobStore:
        """"s3://bucket/prefix"."""
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise InvalidInput(f"not an S3 store URL: {url}", hint="use s3://bucket/prefix", url=url)
        return cls(parts.netloc, parts.path, endpoint_url=s3_endpoint)

    def __repr__(self) -> str:
        return f"S3BlobStore({self.url!r})"

    def key(self, digest: str) -> str:
        """The object key of a blob."""
        return self._blob_prefix + check_digest(digest)

    # -- writing ---------------------------------------------------------------------------

    def put_file(
        self, path: Path, *, expected: str | None = None, progress: Callable[[int], None] | None = None
    ) -> BlobInfo:
        """Store a file's bytes (streamed, verified, deduplicated).

        Without `expected`, a file of at least part_size is hashed first (the key must be known
        before a multipart upload starts) and hashed again while it uploads.

        Raises:
            IntegrityFailure: the bytes do not match `expected` (nothing becomes visible)
            StorageError: S3 failed
        """
        with open_source(Path(path)) as f:
            try:
                size = os.fstat(f.fileno()).st_size
                if expected is None and size >= self.part_size:
                    digest = hash_stream(f)[0]
                    if self.exists(digest):
                        return BlobInfo(digest=digest, size=size, created=False)
                    expected = digest
                    f.seek(0)
            except OSError as e:
                raise translate_os_error(e, path=str(path)) from e
            return self._put(f, expected, progress, size_hint=size)

    def put_stream(
        self, stream: BinaryIO, *, expected: str | None = None, progress: Callable[[int], None] | None = None
    ) -> BlobInfo:
        """Store a stream's bytes until EOF; see put_file.

        Without `expected`, a stream of at least part_size is spooled to a local temp file while
        it is hashed, then uploaded from there.
        """
        return self._put(stream, expected, progress, size_hint=None)

    def _put(
        self,
        stream: BinaryIO,
        expected: str | None,
        progress: Callable[[int], None] | None,
        *,
        size_hint: int | None,
    ) -> BlobInfo:
        if expected is not None:
            check_digest(expected)
        try:
            first = read_up_to(stream, self.part_size)
            if len(first) < self.part_size:
                return self._put_small(first, expected, progress)
            if expected is None:
                return self._spool_then_put(first, stream, progress)
            if self.exists(expected):
                # Already stored: still read the bytes, so a wrong `expected` is reported, not trusted.
                h = hashlib.sha256(first)
                size = len(first) + hash_stream(stream, sink=_HashSink(h))[1]
                if h.hexdigest() != expected:
                    raise mismatch(expected, h.hexdigest(), where=f"put to {self.url}")
                return BlobInfo(digest=expected, size=size, created=False)
            return self._put_multipart(first, stream, expected, progress, size_hint)
        except RegistryError:
            raise
        except OSError as e:  # reading the source failed (a dropped HTTP upload, an I/O error)
            raise translate_os_error(e, path="the stream being stored") from e

    def _put_small(self, data: bytes, expected: str | None, progress: Callable[[int], None] | None) -> BlobInfo:
        digest = hashlib.sha256(data).hexdigest()
        if expected is not None and digest != expected:
            raise mismatch(expected, digest, where=f"put to {self.url}")
        key = self.key(digest)
        created = True
        for wait in (*CONFLICT_WAITS_S, None):
            try:
                self.client.put_object(
                    Bucket=self.bucket, Key=key, Body=data, IfNoneMatch="*", ChecksumSHA256=sha256_b64(digest)
                )
                break
            except ClientError as e:
                if _is_precondition_failed(e):
                    created = False
                    break
                if not _is_write_conflict(e) or wait is None:
                    raise translate(e, op="put", key=key) from e
                time.sleep(wait)  # someone is writing the same bytes right now; 412 comes next
            except BotoCoreError as e:
                raise translate(e, op="put", key=key) from e
        if progress is not None:
            progress(len(data))
        return BlobInfo(digest=digest, size=len(data), created=created)

    def _spool_then_put(self, first: bytes, stream: BinaryIO, progress: Callable[[int], None] | None) -> BlobInfo:
        try:
            spool = tempfile.TemporaryFile(dir=self.spool_dir)
        except OSError as e:
            raise translate_os_error(e, path=str(self.spool_dir or tempfile.gettempdir())) from e
        with spool:
            try:
                spool.write(first)
                h = hashlib.sha256(first)
                size = len(first) + hash_stream(stream, sink=_Tee(spool, h))[1]
                spool.seek(0)
            except OSError as e:
                raise translate_os_error(e, path=str(self.spool_dir or tempfile.gettempdir())) from e
            return self._put(spool, h.hexdigest(), progress, size_hint=size)

    def _put_multipart(
        self,
        first: bytes,
        stream: BinaryIO,
        expected: str,
        progress: Callable[[int], None] | None,
        size_hint: int | None,
    ) -> BlobInfo:
        key = self.key(expected)
        part_size = self.part_size
        if size_hint:
            part_size = max(part_size, -(-size_hint // MAX_PARTS))
        try:
            upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=key, ChecksumAlgorithm="SHA256")[
                "UploadId"
            ]
        except (ClientError, BotoCoreError) as e:
            raise translate(e, op="create multipart upload", key=key) from e
        h = hashlib.sha256()
        parts: list[dict[str, Any]] = []
        size = 0
        completed = False
        try:
            chunk = first + read_up_to(stream, part_size - len(first)) if part_size > len(first) else first
            while chunk:
                number = len(parts) + 1
                if number > MAX_PARTS:
                    raise StorageError(f"S3 put {key} failed: more than {MAX_PARTS} parts", key=key)
                h.update(chunk)
                part_sum = sha256_b64(hashlib.sha256(chunk).hexdigest())
                try:
                    r = self.client.upload_part(
                        Bucket=self.bucket,
                        Key=key,
                        UploadId=upload_id,
                        PartNumber=number,
                        Body=chunk,
                        ChecksumSHA256=part_sum,
                    )
                except (ClientError, BotoCoreError) as e:
                    raise translate(e, op=f"upload part {number} of", key=key) from e
                parts.append({"PartNumber": number, "ETag": r["ETag"], "ChecksumSHA256": part_sum})
                size += len(chunk)
                if progress is not None:
                    progress(len(chunk))
                chunk = read_up_to(stream, part_size)
            actual = h.hexdigest()
            if actual != expected:
                raise mismatch(expected, actual, where=f"put to {self.url}")
            created = self.complete(key, upload_id, parts)
            completed = created  # a 412 leaves this upload open: it is aborted below
            return BlobInfo(digest=expected, size=size, created=created)
        finally:
            if not completed:
                self.abort_upload(key, upload_id)

    def complete(self, key: str, upload_id: str, parts: list[dict[str, Any]]) -> bool:
        """Complete a multipart upload if the key is still free: True when this upload created the
        object, False when another writer stored it first (then this upload is to be aborted).

        Raises:
            StorageError: S3 failed (the caller aborts the upload)
        """
        try:
            self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}, IfNoneMatch="*"
            )
            return True
        except ClientError as e:
            if _is_precondition_failed(e):
                return False
            # On a 409 AWS wants the whole upload redone; the other writer is storing these
            # same bytes, so waiting for its object is as good and costs no re-upload.
            if _is_write_conflict(e) and self._appears(key):
                return False
            raise translate(e, op="complete multipart upload", key=key) from e
        except BotoCoreError as e:
            raise translate(e, op="complete multipart upload", key=key) from e

    def _appears(self, key: str) -> bool:
        for wait in CONFLICT_WAITS_S:
            time.sleep(wait)
            try:
                self.client.head_object(Bucket=self.bucket, Key=key)
                return True
            except (ClientError, BotoCoreError):
                continue
        return False

    def abort_upload(self, key: str, upload_id: str) -> None:
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except (ClientError, BotoCoreError):
            # The original error matters more; a bucket lifecycle rule for incomplete multipart
            # uploads cleans up what an abort could not.
            pass

    # -- reading ---------------------------------------------------------------------------

    def exists(self, digest: str) -> bool:
        key = self.key(digest)
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
            return True
        except ClientError as e:
            if _is_missing(e):
                return False
            raise translate(e, op="head", key=key) from e
        except BotoCoreError as e:
            raise translate(e, op="head", key=key) from e

    def size(self, digest: str) -> int:
        """Size in bytes. Raises BlobNotFound."""
        key = self.key(digest)
        try:
            return int(self.client.head_object(Bucket=self.bucket, Key=key)["ContentLength"])
        except (ClientError, BotoCoreError) as e:
            raise translate(e, op="head", key=key, digest=digest) from e

    def _get(self, digest: str, byte_range: str | None = None) -> _Body:
        key = self.key(digest)
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if byte_range:
            kwargs["Range"] = byte_range
        try:
            return _Body(self.client.get_object(**kwargs)["Body"], key)
        except ClientError as e:
            if _code(e) == "InvalidRange" or _status(e) == 416:
                raise InvalidInput(f"range {byte_range} is not satisfiable for blob {digest}", digest=digest) from e
            raise translate(e, op="get", key=key, digest=digest) from e
        except BotoCoreError as e:
            raise translate(e, op="get", key=key, digest=digest) from e

    def fetch(self, digest: str, dest: Path, *, progress: Callable[[int], None] | None = None) -> None:
        """Download a blob to `dest` atomically, verified.

        Raises:
            BlobNotFound: no such blob
            IntegrityFailure: the stored bytes do not match the digest (`dest` is not touched)
        """
        where = f"{self.url} {self.key(digest)}"
        with self._get(digest) as body:
            land_verified(iter_chunks(body), Path(dest), digest, where=where, progress=progress)

    def open(self, digest: str, *, start: int = 0, end: int | None = None) -> BinaryIO:
        """A streaming reader over bytes [start, end) of a blob; use it as a context manager.

        A full read (start=0, end=None) verifies the digest at EOF (IntegrityFailure); a ranged
        read is not verified.
        """
        if start < 0 or (end is not None and end < start):
            raise InvalidInput(f"invalid byte range [{start}, {end})", start=start, end=end)
        full = start == 0 and end is None
        if end is not None and end == start:
            if start > self.size(digest):
                raise InvalidInput(f"range start {start} is past the end of blob {digest}", start=start)
            raw = VerifyingReader(io.BytesIO(b""), expected=None, where=self.url)
        else:
            byte_range = None if full else f"bytes={start}-{'' if end is None else end - 1}"
            try:
                body = self._get(digest, byte_range)
            except InvalidInput:
                if start == self.size(digest):  # an empty tail is a valid, empty range
                    body = _Body(io.BytesIO(b""), self.key(digest))
                else:
                    raise
            raw = VerifyingReader(body, expected=digest if full else None, where=f"{self.url} {self.key(digest)}")
        return io.BufferedReader(raw, buffer_size=CHUNK)

    def verify(self, digest: str) -> bool:
        """Re-hash the stored bytes. Raises BlobNotFound."""
        with self._get(digest) as body:
            return hash_stream(body)[0] == digest

    def delete(self, digest: str) -> None:
        """Remove a blob; removing an absent blob is not an error."""
        key = self.key(digest)
        try:
            self.client.delete_object(Bucket=self.bucket, Key=key)
        except (ClientError, BotoCoreError) as e:
            raise translate(e, op="delete", key=key) from e

    def iter_digests(self) -> Iterator[str]:
        """Every stored digest, in sorted order."""
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self._blob_prefix):
                for obj in page.get("Contents", []):
                    name = obj["Key"][len(self._blob_prefix) :]
                    if is_digest(name):
                        yield name
        except (ClientError, BotoCoreError) as e:
            raise translate(e, op="list", key=self._blob_prefix) from e


class _HashSink:
    """A write-only sink that only hashes."""

    def __init__(self, h: Any):
        self._h = h

    def write(self, data: bytes) -> int:
        self._h.update(data)
        return len(data)


class _Tee(_HashSink):
    """Hash and write to a file."""

    def __init__(self, f: BinaryIO, h: Any):
        super().__init__(h)
        self._f = f

    def write(self, data: bytes) -> int:
        self._f.write(data)
        return super().write(data)
