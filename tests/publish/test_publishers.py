"""Publishers against real targets: a folder, S3 served by moto on loopback, a Hub HTTP server on loopback."""

from __future__ import annotations

import json

import pytest

from registry.errors import AlreadyExists, InvalidInput, StorageError
from registry.publish import BUILTIN_PUBLISHERS, open_publisher, parse_target
from registry.publish.s3 import S3Publisher
from tests.publish.fakehub import serve


@pytest.fixture(scope="module")
def merged(models_dir, tiny_llama, tiny_adapter):
    """A real merged folder from the merge engine (manifest.json included)."""
    from registry.merge import merge

    return merge(tiny_llama, tiny_adapter, models_dir / "merged-for-publish", dtype="float32").out_dir


def loads(folder) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(folder)
    tok = AutoTokenizer.from_pretrained(folder)
    assert model(**tok("hello world", return_tensors="pt")).logits.isfinite().all()


def test_targets_are_parsed_and_unknown_schemes_refused():
    assert set(BUILTIN_PUBLISHERS) >= {"dir", "s3", "hf"}
    assert open_publisher("hf://org/model@dev").revision == "dev"
    for bad in ("", "/no/scheme", "ftp://x/y", "hf://just-a-name", "dir://relative/path"):
        with pytest.raises(InvalidInput):
            open_publisher(bad) if bad.startswith(("hf", "dir")) else parse_target(bad)


def test_directory_publish_appears_whole_and_republishing_is_a_no_op(merged, tmp_path):
    dest = tmp_path / "out" / "model"
    pub = open_publisher(f"dir://{dest}")
    res = pub.publish(merged)
    assert res.uri == f"dir://{dest}" and res.files == len(list(merged.iterdir()))
    assert [p.name for p in dest.parent.iterdir()] == ["model"]  # no temp folder left beside it
    loads(dest)
    assert pub.publish(merged).manifest_digest == res.manifest_digest
    (dest / "manifest.json").write_text("{}")
    with pytest.raises(AlreadyExists):
        pub.publish(merged)


def test_directory_publish_refuses_a_folder_without_manifest(tmp_path):
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text("{}")
    with pytest.raises(InvalidInput):
        open_publisher(f"dir://{tmp_path / 'dest'}").publish(tmp_path / "half")
    assert not (tmp_path / "dest").exists()


@pytest.fixture(scope="module")
def moto_endpoint():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3(moto_endpoint, monkeypatch):
    import boto3

    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(k, "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    client = boto3.client("s3", endpoint_url=moto_endpoint)
    client.create_bucket(Bucket="models")
    yield client
    for o in client.list_objects_v2(Bucket="models").get("Contents", []):
        client.delete_object(Bucket="models", Key=o["Key"])
    client.delete_bucket(Bucket="models")


def test_s3_publish_writes_the_manifest_last_and_loads(merged, s3, moto_endpoint, tmp_path):
    order = []
    s3.meta.events.register("before-parameter-build.s3.PutObject", lambda params, **kw: order.append(params["Key"]))
    res = S3Publisher("models", "team/bot-v1", client=s3).publish(merged)
    assert res.uri == "s3://models/team/bot-v1" and order[-1] == "team/bot-v1/manifest.json"
    assert len(order) == res.files
    out = tmp_path / "down"
    manifest = json.loads(s3.get_object(Bucket="models", Key="team/bot-v1/manifest.json")["Body"].read())
    for rel in [*manifest["files"], "manifest.json"]:
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        s3.download_file("models", f"team/bot-v1/{rel}", str(out / rel))
    loads(out)


def test_s3_publish_that_fails_half_way_leaves_no_manifest(merged, s3):
    calls = []

    def fail_third(params, **kw):
        calls.append(params["Key"])
        if len(calls) == 3:
            raise ConnectionError("network dropped")

    s3.meta.events.register("before-parameter-build.s3.PutObject", fail_third)
    with pytest.raises((StorageError, ConnectionError)):
        S3Publisher("models", "half", client=s3).publish(merged)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="models", Prefix="half/").get("Contents", [])]
    assert keys and "half/manifest.json" not in keys  # some files, but nothing that looks complete


def test_hub_publish_is_one_commit_through_huggingface_hub_over_real_http(merged, tmp_path, monkeypatch):
    from huggingface_hub import constants

    from registry.settings import Settings

    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)  # the loopback server speaks LFS, not Xet
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    hub, server = serve()
    try:
        settings = Settings.from_env(env={}, home=tmp_path, hf_endpoint=hub.url)
        pub = open_publisher("hf://team/bot@release", settings=settings)
        res = pub.publish(merged)
        commits = [p for m, p in hub.requests if "/commit/" in p]
        assert commits == ["/api/models/team/bot/commit/release"]  # one commit, on the branch
        assert res.revision == hub.repos["team/bot"].branches["release"] and res.uri == "hf://team/bot@release"
        files = hub.files_at("team/bot", "release")
        assert set(files) == {p.name for p in merged.iterdir()}
        assert any(p.startswith("/lfs-upload/") for _m, p in hub.requests)  # weights went through LFS
        assert "Bearer hf_test_token" in hub.tokens_seen
        loads(hub.write_out("team/bot", tmp_path / "from-hub", "release"))
        again = pub.publish(merged)  # the repo exists now: still one commit per publish
        assert again.manifest_digest == res.manifest_digest
    finally:
        server.shutdown()
