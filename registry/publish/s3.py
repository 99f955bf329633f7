"""s3://bucket/prefix: every file under the prefix, manifest.json last.

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


class S3Publisher:
    kind = "s3"

    def __init__(self, bucket: str, prefix: str, *, endpoint_url: str | None = None, client: Any = None):
        self.bucket, self.prefix = bucket, prefix.strip("/")
        self._endpoint, self._client = endpoint_url, client

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
        uri = f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"
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
