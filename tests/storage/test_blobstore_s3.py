"""The S3 store against moto's S3 server on loopback: multipart, aborts, create-if-absent, races."""

from __future__ import annotations

import hashlib
import io
import os

import boto3
import pytest
from botocore.config import Config

from registry.errors import IntegrityFailure, StorageError
from registry.storage import open_store
from registry.storage.s3 import S3BlobStore
from tests.factories import put_from_two_processes, stored_names

MiB = 1024 * 1024


def count_calls(store, operation: str) -> list[int]:
    """Count S3 API calls of one kind made through the store's own client."""
    calls: list[int] = []
    store.client.meta.events.register(f"before-call.s3.{operation}", lambda **_: calls.append(1))
    return calls


def open_uploads(store) -> list:
    return store.client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", [])


@pytest.fixture(scope="module")
def big_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("big") / "model.safetensors"
    path.write_bytes(os.urandom(21 * MiB))
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def test_blob_key_is_prefix_blobs_sha256_hex(s3_store):
    d = s3_store.put_stream(io.BytesIO(b"hello")).digest
    assert stored_names(s3_store) == [f"team/registry/blobs/sha256/{d}"]
    assert s3_store.url.endswith("/team/registry")


def test_multipart_round_trip_of_21_mb_keeps_our_own_sha256(s3_store, big_file, tmp_path):
    path, digest = big_file
    parts = count_calls(s3_store, "UploadPart")
    info = s3_store.put_file(path)
    assert (info.digest, info.size, info.created) == (digest, 21 * MiB, True)
    assert len(parts) == 3  # 8 + 8 + 5 MiB
    etag = s3_store.client.head_object(Bucket=s3_store.bucket, Key=s3_store.key(digest))["ETag"]
    assert etag.strip('"').endswith("-3")  # a multipart ETag, not a content hash
    s3_store.fetch(digest, tmp_path / "out.bin")
    assert hashlib.sha256((tmp_path / "out.bin").read_bytes()).hexdigest() == digest
    assert s3_store.verify(digest)
    assert open_uploads(s3_store) == []


def test_multipart_with_wrong_expected_digest_is_aborted_and_leaves_nothing(s3_store, big_file):
    path, digest = big_file
    wrong = hashlib.sha256(b"not these bytes").hexdigest()
    aborts = count_calls(s3_store, "AbortMultipartUpload")
    completes = count_calls(s3_store, "CompleteMultipartUpload")
    with pytest.raises(IntegrityFailure):
        s3_store.put_file(path, expected=wrong)
    assert (len(aborts), len(completes)) == (1, 0)
    assert open_uploads(s3_store) == []
    assert stored_names(s3_store) == []


def test_source_that_fails_mid_upload_aborts_the_multipart_upload(s3_store):
    class Failing(io.RawIOBase):
        sent = 0

        def readable(self):
            return True

        def readinto(self, b):
            if self.sent >= 12 * MiB:
                raise OSError(5, "Input/output error")
            n = min(len(b), MiB)
            b[:n] = b"z" * n
            self.sent += n
            return n

    with pytest.raises(StorageError):
        s3_store.put_stream(Failing(), expected=hashlib.sha256(b"whatever").hexdigest())
    assert open_uploads(s3_store) == []
    assert stored_names(s3_store) == []


def test_large_stream_without_expected_digest_is_spooled_then_stored(s3_store, big_file):
    path, digest = big_file
    with open(path, "rb") as f:
        info = s3_store.put_stream(f)
    assert (info.digest, info.created) == (digest, True)
    assert s3_store.verify(digest)


def test_large_put_of_a_stored_blob_uploads_nothing(s3_store, big_file):
    path, digest = big_file
    s3_store.put_file(path)
    parts = count_calls(s3_store, "UploadPart")
    again = s3_store.put_file(path, expected=digest)
    assert not again.created and again.size == 21 * MiB
    assert parts == []


def test_small_put_is_create_if_absent(s3_store):
    first = s3_store.put_stream(io.BytesIO(b"tiny"))
    head = s3_store.client.head_object(Bucket=s3_store.bucket, Key=s3_store.key(first.digest))
    second = s3_store.put_stream(io.BytesIO(b"tiny"))
    head2 = s3_store.client.head_object(Bucket=s3_store.bucket, Key=s3_store.key(first.digest))
    assert first.created and not second.created
    assert head2["LastModified"] == head["LastModified"]


def test_missing_bucket_raises_storage_error(s3_endpoint):
    store = open_store("s3://no-such-bucket-here/x", s3_endpoint=s3_endpoint)
    with pytest.raises(StorageError) as e:
        store.put_stream(io.BytesIO(b"x"))
    assert "NoSuchBucket" in str(e.value)


def test_unreachable_endpoint_raises_storage_error(aws_env):
    client = boto3.client(
        "s3",
        endpoint_url="http://127.0.0.1:9",
        config=Config(retries={"max_attempts": 1}, connect_timeout=1),
    )
    store = S3BlobStore("bucket", client=client)
    with pytest.raises(StorageError):
        store.exists(hashlib.sha256(b"").hexdigest())


def test_concurrent_multipart_puts_from_two_processes_store_one_blob(s3_store, s3_endpoint, tmp_path):
    data = os.urandom(10 * MiB)
    src = tmp_path / "weights.bin"
    src.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    results = put_from_two_processes(s3_store.url, src, s3_endpoint)
    assert [r["digest"] for r in results] == [digest, digest]
    # AWS makes IfNoneMatch="*" atomic (the loser gets 412 or 409), so there exactly one would say
    # created=True. moto 5.2.5 checks for the key and then completes without a lock, so both may;
    # what must hold everywhere is that one intact blob is stored and nothing is left open.
    assert any(r["created"] for r in results)
    assert list(s3_store.iter_digests()) == [digest] and s3_store.verify(digest)
    assert open_uploads(s3_store) == []
