"""s3://bucket/prefix: every file under the prefix, manifest.json last.

From a folder the files are uploaded (`publish`); from an S3 blob store on the same endpoint and
region they are copied server-side (`publish_stored`: CopyObject, UploadPartCopy past 5 GiB), so
no byte of the model passes through this process.

Readers treat a prefix as a checkpoint only once its manifest is there, and the manifest is the
last object written, so a half-published prefix never looks complete. Republishing over an
older checkpoint removes the old manifest first for the same reason. Credentials come from the
usual boto3 chain; the endpoint from settings.s3_endpoint (MinIO, moto, R2).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from registry.errors import IntegrityFailure, InvalidInput
from registry.publish.base import MANIFEST, Progress, Published, plan

MiB = 1024 * 1024
GiB = 1024 * MiB
COPY_LIMIT = 5 * GiB  # the largest object one CopyObject may copy (an S3 limit)
COPY_PART = 512 * MiB  # UploadPartCopy part size for larger ones (S3: 5 MiB .. 5 GiB, at most 10,000 parts)


class S3Publisher:
    kind = "s3"

    def __init__(self, bucket: str, prefix: str, *, endpoint_url: str | None = None, client: Any = None,
                 copy_limit: int = COPY_LIMIT, copy_part: int = COPY_PART):
        self.bucket, self.prefix = bucket, prefix.strip("/")
        self._endpoint, self._client = endpoint_url, client
        self.copy_limit, self.copy_part = copy_limit, copy_part

    @classmethod
    def from_uri(cls, uri: str, *, settings=None) -> S3Publisher:
        parts = urlsplit(uri)
        if not parts.netloc:
            raise InvalidInput(f"{uri}: no bucket", hint="use s3://bucket/prefix")
        return cls(parts.netloc, parts.path, endpoint_url=getattr(settings, "s3_endpoint", None))

    @property
    def client(self):
        if self._client is None:
            import boto3
            from botocore.config import Config

            self._client = boto3.client("s3", endpoint_url=self._endpoint,
                                        config=Config(retries={"mode": "standard", "max_attempts": 5}))
        return self._client

    def key(self, rel: str) -> str:
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def publish(self, folder: Path, *, progress: Progress | None = None) -> Published:
        """Upload the folder; the manifest goes last, after every other object is checked in place."""
        from boto3.s3.transfer import TransferConfig
        from botocore.exceptions import BotoCoreError, ClientError

        from registry.storage.s3 import translate

        files, digest = plan(folder)
        uri = self.uri
        cfg = TransferConfig(multipart_threshold=64 * MiB, multipart_chunksize=64 * MiB)
        rel = MANIFEST
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self.key(MANIFEST))
            for i, rel in enumerate(files):
                path = Path(folder) / rel
                self.client.upload_file(str(path), self.bucket, self.key(rel), Config=cfg)
                if rel != MANIFEST:
                    size = self.client.head_object(Bucket=self.bucket, Key=self.key(rel))["ContentLength"]
                    if size != path.stat().st_size:
                        raise IntegrityFailure(f"s3 object {self.key(rel)} has {size} bytes, expected "
                                               f"{path.stat().st_size}", key=self.key(rel))
                if progress:
                    progress("upload", i + 1, len(files))
        except (ClientError, BotoCoreError) as e:
            raise translate(e, op="publish", key=self.key(rel)) from e
        return Published(uri, None, digest, len(files))

    def publish_stored(self, files: dict[str, tuple[str, int]], manifest_digest: str, *, store: Any,
                       progress: Progress | None = None) -> Published | None:
        """Copy an artifact's stored blobs ({relative path: (sha256, size)}) into the prefix server-side,
        the manifest last, each object's size checked before the manifest goes in.

        Returns None (nothing done) unless `store` is an S3 blob store on this publisher's endpoint and
        region: the caller then publishes a folder. The blobs are trusted as the store keeps them (a blob
        is visible only once it matches its digest); nothing is read here.
        """
        from botocore.exceptions import BotoCoreError, ClientError

        from registry.storage.s3 import S3BlobStore, translate

        if not isinstance(store, S3BlobStore) or not self._same_service(store.client) or MANIFEST not in files:
            return None
        order = sorted(rel for rel in files if rel != MANIFEST) + [MANIFEST]
        rel = MANIFEST
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self.key(MANIFEST))
            for i, rel in enumerate(order):
                digest, size = files[rel]
                self._copy({"Bucket": store.bucket, "Key": store.key(digest)}, self.key(rel), size)
                if rel != MANIFEST:
                    held = self.client.head_object(Bucket=self.bucket, Key=self.key(rel))["ContentLength"]
                    if held != size:
                        raise IntegrityFailure(f"s3 object {self.key(rel)} has {held} bytes, expected {size}",
                                               key=self.key(rel))
                if progress:
                    progress("copy", i + 1, len(order))
        except (ClientError, BotoCoreError) as e:
            raise translate(e, op="publish (server-side copy)", key=self.key(rel)) from e
        return Published(self.uri, None, manifest_digest, len(order))

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def _same_service(self, other: Any) -> bool:
        """Whether a client talks to the same S3 service as ours (endpoint and region): a copy between them
        stays inside it. Credentials are the same boto3 chain for both."""
        mine, theirs = self.client.meta, other.meta
        return bool(mine.endpoint_url == theirs.endpoint_url and mine.region_name == theirs.region_name)

    def _copy(self, source: dict[str, str], key: str, size: int) -> None:
        if size <= self.copy_limit:
            # a full-object checksum of the copy, computed by S3 (a multipart source has a composite one)
            self.client.copy_object(Bucket=self.bucket, Key=key, CopySource=source, ChecksumAlgorithm="CRC32")
            return
        upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=key)["UploadId"]
        done = False
        try:
            step = max(self.copy_part, -(-size // 10_000))
            parts = []
            for number, start in enumerate(range(0, size, step), 1):
                end = min(start + step, size) - 1
                r = self.client.upload_part_copy(Bucket=self.bucket, Key=key, UploadId=upload_id,
                                                 PartNumber=number, CopySource=source,
                                                 CopySourceRange=f"bytes={start}-{end}")
                parts.append({"PartNumber": number, "ETag": r["CopyPartResult"]["ETag"]})
            self.client.complete_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id,
                                                  MultipartUpload={"Parts": parts})
            done = True
        finally:
            if not done:
                self._abort(key, upload_id)

    def _abort(self, key: str, upload_id: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except (ClientError, BotoCoreError):
            pass  # the copy's own error matters more; nothing of an aborted upload is visible anyway
