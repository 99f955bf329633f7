"""publish --to s3:// from an S3 store on the same endpoint: copied server-side, no model byte through us.

moto's S3 server on loopback holds both buckets. Every S3 call any client of this process makes is
counted with a botocore event hook on boto3's default session (the clients the registry builds
come from it), so "nothing was downloaded or uploaded" is a count of GetObject / PutObject /
UploadPart calls, not a claim.
"""

from __future__ import annotations

import collections
import hashlib
import os
import uuid

import boto3
import pytest

from registry.publish.s3 import S3Publisher
from registry.storage.s3 import MiB, S3BlobStore

BYTE_CALLS = ("GetObject", "PutObject", "UploadPart")  # the calls that move an object's bytes through us


@pytest.fixture
def s3_calls(aws_env):
    """{S3 operation name: calls} made by every boto3 client built from now on."""
    calls: collections.Counter[str] = collections.Counter()
    boto3.setup_default_session()
    assert boto3.DEFAULT_SESSION is not None
    boto3.DEFAULT_SESSION.events.register("before-call.s3", lambda model, **kw: calls.update([model.name]))
    yield calls
    boto3.DEFAULT_SESSION = None


@pytest.fixture
def other_bucket(s3_endpoint):
    name = f"shipped-{uuid.uuid4().hex[:12]}"
    boto3.session.Session().client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(Bucket=name)
    return name


def _reader(s3_endpoint):
    """A client outside the counted session, for the test's own reads."""
    return boto3.session.Session().client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")


def test_publish_to_s3_from_an_s3_store_copies_server_side(tmp_path, bucket, other_bucket, s3_endpoint, s3_calls,
                                                           tiny_llama, tiny_adapter):
    from registry.app import Registry
    from registry.settings import Settings

    reg = Registry(Settings.from_env(env={}, home=tmp_path / "h", store=f"s3://{bucket}/team",
                                     s3_endpoint=s3_endpoint))
    try:
        reg.add_base(tiny_llama, name="tiny-llama")
        ref = reg.push(tiny_adapter, name="bot", base="tiny-llama").ref
        art = reg.merge(ref)
        s3_calls.clear()
        job = reg.jobs.publish(ref, to=f"s3://{other_bucket}/models/bot", force=True, inline=True)
        assert job.state == "succeeded", job.error
    finally:
        reg.close()
    assert {op: s3_calls[op] for op in BYTE_CALLS} == dict.fromkeys(BYTE_CALLS, 0), s3_calls
    assert s3_calls["CopyObject"] == len(art.files)
    reader = _reader(s3_endpoint)
    for rel, f in art.files.items():
        body = reader.get_object(Bucket=other_bucket, Key=f"models/bot/{rel}")["Body"].read()
        assert hashlib.sha256(body).hexdigest() == f["digest"], rel
    assert job.result["manifest_digest"] == art.manifest_digest


def _blob(store: S3BlobStore, data: bytes) -> tuple[str, int]:
    info = store.put_stream(__import__("io").BytesIO(data))
    return info.digest, info.size


def test_an_object_over_the_copy_limit_is_copied_in_parts_server_side(bucket, other_bucket, s3_endpoint, s3_calls):
    store = S3BlobStore(bucket, "team", endpoint_url=s3_endpoint)
    big = os.urandom(11 * MiB)
    files = {"model.safetensors": _blob(store, big), "manifest.json": _blob(store, b'{"files": {}}')}
    s3_calls.clear()
    pub = S3Publisher(other_bucket, "big", endpoint_url=s3_endpoint, copy_limit=1 * MiB, copy_part=5 * MiB)
    res = pub.publish_stored(files, files["manifest.json"][0], store=store)
    assert res is not None and res.uri == f"s3://{other_bucket}/big" and res.files == 2
    assert s3_calls["UploadPartCopy"] == 3 and s3_calls["CompleteMultipartUpload"] == 1  # 5 + 5 + 1 MiB
    assert {op: s3_calls[op] for op in BYTE_CALLS} == dict.fromkeys(BYTE_CALLS, 0), s3_calls
    reader = _reader(s3_endpoint)
    assert reader.get_object(Bucket=other_bucket, Key="big/model.safetensors")["Body"].read() == big
    assert reader.list_multipart_uploads(Bucket=other_bucket).get("Uploads", []) == []


def test_a_store_on_another_endpoint_is_not_copied_from(bucket, other_bucket, s3_endpoint, s3_calls):
    """The same moto, named differently, counts as another service: the caller uploads a folder instead."""
    store = S3BlobStore(bucket, "team", endpoint_url=s3_endpoint.replace("127.0.0.1", "localhost"))
    pub = S3Publisher(other_bucket, "x", endpoint_url=s3_endpoint)
    assert pub.publish_stored({"manifest.json": ("0" * 64, 2)}, "0" * 64, store=store) is None
    assert s3_calls["CopyObject"] == 0
