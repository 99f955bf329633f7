"""Finding a blob store from a URL: built-ins and third-party backends go through one door."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest
import tomllib

from registry.errors import InvalidInput
from registry.storage import LocalBlobStore, open_store, store_class
from registry.storage.base import BUILTIN_STORES, ENTRY_POINT_GROUP
from registry.storage.s3 import S3BlobStore

REPO = Path(__file__).resolve().parents[2]


def test_builtin_schemes_resolve_to_the_local_and_s3_stores():
    assert store_class("file") is LocalBlobStore
    assert store_class("s3") is S3BlobStore


def test_s3_url_gives_bucket_and_prefix(aws_env):
    store = open_store("s3://models/team/registry/", s3_endpoint="http://127.0.0.1:1")
    assert isinstance(store, S3BlobStore)
    assert (store.bucket, store.prefix, store.url) == ("models", "team/registry", "s3://models/team/registry")
    assert open_store("s3://models").key("0" * 64) == "blobs/sha256/" + "0" * 64


def test_unknown_scheme_is_invalid_input_that_names_the_known_ones():
    with pytest.raises(InvalidInput) as e:
        open_store("gopher://x/y")
    assert "file" in str(e.value) and "s3" in str(e.value)
    assert ENTRY_POINT_GROUP in e.value.hint


@pytest.mark.parametrize("url", ["", "   ", "s3://", "s3:///prefix-without-bucket"])
def test_empty_or_bucketless_url_is_invalid_input(url):
    with pytest.raises(InvalidInput):
        open_store(url)


def test_third_party_store_registered_as_an_entry_point_is_found(tmp_path, monkeypatch):
    site = tmp_path / "site"
    (site / "demo_blobstore-0.1.dist-info").mkdir(parents=True)
    (site / "demo_blobstore-0.1.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: demo-blobstore\nVersion: 0.1\n"
    )
    (site / "demo_blobstore-0.1.dist-info" / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\ndemo = demo_blobstore:DemoStore\n"
    )
    (site / "demo_blobstore.py").write_text(
        "from registry.storage.local import LocalBlobStore\n"
        "class DemoStore(LocalBlobStore):\n"
        "    @classmethod\n"
        "    def from_url(cls, url, *, s3_endpoint=None):\n"
        "        return cls(url.split('://', 1)[1])\n"
    )
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delitem(sys.modules, "demo_blobstore", raising=False)

    store = open_store(f"demo://{tmp_path / 'blobs'}")
    assert type(store).__name__ == "DemoStore"
    assert store.put_stream(io.BytesIO(b"x")).created


def test_pyproject_entry_points_match_the_builtin_fallback_table():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = project.get("entry-points", {}).get(ENTRY_POINT_GROUP)
    if declared is None:
        pytest.skip(f"pyproject.toml does not declare [project.entry-points.\"{ENTRY_POINT_GROUP}\"] yet")
    assert declared == BUILTIN_STORES
