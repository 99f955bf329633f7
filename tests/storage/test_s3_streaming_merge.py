"""A merge into an S3 store uploads each shard while the next is merged (moto's server on loopback).

Nothing of it is visible before every file is up and checked, and an interrupted merge leaves no
object and no open upload behind. The engine's own progress callback is the hook: it runs on the
merging thread, so while it waits the engine cannot finish the shard it is writing.
"""

from __future__ import annotations

import hashlib
import time

import boto3
import pytest
from sqlalchemy import func, select

from registry.catalog import models as M

SHARD = 100_000  # bytes: the tiny Llama (~0.4 MB in float32) becomes several shards


@pytest.fixture
def s3_registry(tmp_path, bucket, s3_endpoint, tiny_llama, tiny_adapter):
    from registry.app import Registry
    from registry.settings import Settings

    reg = Registry(Settings.from_env(env={}, home=tmp_path / "h", store=f"s3://{bucket}/team",
                                     s3_endpoint=s3_endpoint))
    reg.add_base(tiny_llama, name="tiny-llama")
    reg.push(tiny_adapter, name="bot", base="tiny-llama")
    yield reg
    reg.close()


def _objects(client, bucket) -> dict[str, int]:
    return {o["Key"]: o["Size"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])}


def _uploads(client, bucket) -> dict[str, int]:
    """{object key: bytes its open multipart upload holds so far}."""
    held: dict[str, int] = {}
    for u in client.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
        parts = client.list_parts(Bucket=bucket, Key=u["Key"], UploadId=u["UploadId"]).get("Parts", [])
        held[u["Key"]] = held.get(u["Key"], 0) + sum(p["Size"] for p in parts)
    return held


class FirstShardWatch:
    """A progress callback: at the last tensor (the last shard is still open) it waits until the
    first shard's bytes are all in an open multipart upload in moto, and notes what it saw."""

    def __init__(self, reg, client, bucket, *, then_raise: bool = False):
        self.reg, self.client, self.bucket, self.then_raise = reg, client, bucket, then_raise
        self.seen: dict | None = None

    def __call__(self, done: int, total: int, name: str) -> None:
        if done != total:
            return
        shards = sorted(self.reg.settings.cache_dir.glob("merged/.work-*/*/model-*-of-*.safetensors"))
        first, last = shards[0], shards[-1]
        digest = hashlib.sha256(first.read_bytes()).hexdigest()
        key = f"team/blobs/sha256/{digest}"
        deadline = time.monotonic() + 30
        held = _uploads(self.client, self.bucket)
        while held.get(key) != first.stat().st_size and time.monotonic() < deadline:
            time.sleep(0.05)
            held = _uploads(self.client, self.bucket)
        self.seen = {"shards": len(shards), "first_key": key, "first_size": first.stat().st_size,
                     "held": held.get(key), "visible": key in _objects(self.client, self.bucket),
                     "last_is_open": last.name.startswith(f"model-{len(shards):05d}-")}
        if self.then_raise:
            raise KeyboardInterrupt("interrupted mid-merge")


def test_a_merge_into_s3_uploads_each_shard_while_the_next_is_merged(s3_registry, bucket, s3_endpoint):
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    watch = FirstShardWatch(s3_registry, client, bucket)
    art = s3_registry.merge("bot@1", max_shard_size=SHARD, progress=watch)
    seen = watch.seen
    assert seen is not None and seen["shards"] >= 3
    # before the engine closed its last shard, the first one was all in moto, and not yet visible
    assert seen["held"] == seen["first_size"], seen
    assert not seen["visible"]
    # afterwards: every file an object of its recorded size under its digest, no upload left open
    objects = _objects(client, bucket)
    rec = s3_registry.show("bot@1").merged[0]
    assert rec.id == art.id
    for rel, f in art.files.items():
        assert objects[f"team/blobs/sha256/{f['digest']}"] == f["size"], rel
    assert _uploads(client, bucket) == {}
    for f in art.files.values():
        assert s3_registry.store.verify(f["digest"])  # the bytes hash to the key the engine computed


def test_an_interrupted_merge_into_s3_leaves_nothing_visible(s3_registry, bucket, s3_endpoint):
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    before = _objects(client, bucket)
    watch = FirstShardWatch(s3_registry, client, bucket, then_raise=True)
    with pytest.raises(KeyboardInterrupt):
        s3_registry.merge("bot@1", max_shard_size=SHARD, progress=watch)
    assert watch.seen is not None and watch.seen["held"] == watch.seen["first_size"]  # it was uploading
    assert _objects(client, bucket) == before  # no new object
    assert _uploads(client, bucket) == {}  # every upload begun was aborted
    with s3_registry.db.read() as s:
        assert s.scalar(select(func.count()).select_from(M.MergedArtifact)) == 0



def test_a_shard_upload_that_fails_fails_the_merge_and_leaves_nothing(s3_registry, bucket, s3_endpoint):
    """The network drops on an upload part (a botocore hook on the store's client raises what botocore
    raises then): the merge fails with a one-line StorageError, records nothing, leaves no object and
    no open upload."""
    from botocore.exceptions import EndpointConnectionError

    from registry.errors import StorageError

    client = boto3.client("s3", endpoint_url=s3_endpoint)
    before = _objects(client, bucket)

    def drop(**kwargs):
        raise EndpointConnectionError(endpoint_url=s3_endpoint)

    s3_registry.store.client.meta.events.register("before-send.s3.UploadPart", drop)
    with pytest.raises(StorageError, match="upload part 1 of"):
        s3_registry.merge("bot@1", max_shard_size=SHARD)
    s3_registry.store.client.meta.events.unregister("before-send.s3.UploadPart", drop)
    assert _objects(client, bucket) == before and _uploads(client, bucket) == {}
    with s3_registry.db.read() as s:
        assert s.scalar(select(func.count()).select_from(M.MergedArtifact)) == 0


def test_a_merge_whose_shards_are_already_stored_leaves_no_open_upload(s3_registry, bucket, s3_endpoint):
    """The bucket already holds the merged blobs (the catalog row is gone, as after a catalog restore):
    the shards are uploaded again, completion finds each key taken (412), and every such upload is
    aborted, not left open."""
    from sqlalchemy import delete

    client = boto3.client("s3", endpoint_url=s3_endpoint)
    first = s3_registry.merge("bot@1", max_shard_size=SHARD)
    with s3_registry.db.write() as s:
        s.execute(delete(M.MergedArtifact))
    again = s3_registry.merge("bot@1", max_shard_size=SHARD)
    assert again.created and again.files == first.files
    assert _uploads(client, bucket) == {}


KILLED_MERGE = """
import sys, time
from pathlib import Path
from registry.app import Registry
from registry.settings import Settings

home, store, endpoint, marker = sys.argv[1:5]
reg = Registry(Settings.from_env(env={}, home=Path(home), store=store, s3_endpoint=endpoint))

def progress(done, total, name):
    if done == total:  # the last shard is still open: say so, then wait to be killed
        Path(marker).write_text("merging")
        time.sleep(120)

reg.merge("bot@1", max_shard_size=int(sys.argv[5]), progress=progress)
"""


def test_a_merge_killed_while_uploading_leaves_no_object_and_no_record(s3_registry, bucket, s3_endpoint, tmp_path):
    """SIGKILL, so nothing of ours runs to clean up: the uploads begun stay incomplete, which S3 never shows."""
    import os
    import signal
    import subprocess
    import sys

    client = boto3.client("s3", endpoint_url=s3_endpoint)
    before = _objects(client, bucket)
    marker = tmp_path / "marker"
    home = s3_registry.settings.home
    s3_registry.close()
    proc = subprocess.Popen([sys.executable, "-c", KILLED_MERGE, str(home), f"s3://{bucket}/team", s3_endpoint,
                             str(marker), str(SHARD)], cwd=os.getcwd())
    try:
        deadline = time.monotonic() + 120
        while not (marker.exists() and _uploads(client, bucket)) and time.monotonic() < deadline:
            assert proc.poll() is None, "the merge ended before it could be killed"
            time.sleep(0.1)
        assert marker.exists() and any(_uploads(client, bucket).values())  # killed while uploading
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert _objects(client, bucket) == before  # an incomplete multipart upload is no object
    from registry.app import Registry
    from registry.settings import Settings

    reg = Registry(Settings.from_env(env={}, home=home, store=f"s3://{bucket}/team", s3_endpoint=s3_endpoint))
    try:
        with reg.db.read() as s:
            assert s.scalar(select(func.count()).select_from(M.MergedArtifact)) == 0
        art = reg.merge("bot@1", max_shard_size=SHARD)  # and the next merge completes as if nothing happened
        assert all(reg.store.exists(f["digest"]) for f in art.files.values())
    finally:
        reg.close()
