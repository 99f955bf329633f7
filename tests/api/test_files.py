"""Stored files by digest: ETag, If-None-Match, Range."""

from __future__ import annotations

import hashlib

import pytest


@pytest.fixture
def client(shared):
    return shared.client


@pytest.fixture
def api_registry(shared):
    return shared.registry


@pytest.fixture
def weights(api_registry):
    f = next(f for f in api_registry.show("team-a/bot@1").files if f.role == "weights")
    return f.digest, api_registry.store.path(f.digest).read_bytes()


def test_whole_file_has_the_digest_as_etag_and_304s_on_if_none_match(client, weights):
    digest, data = weights
    r = client.get(f"/api/v1/blobs/{digest}")
    assert r.status_code == 200 and r.content == data and hashlib.sha256(r.content).hexdigest() == digest
    assert r.headers["etag"] == f'"{digest}"' and r.headers["accept-ranges"] == "bytes"
    assert int(r.headers["content-length"]) == len(data)
    r = client.get(f"/api/v1/blobs/{digest}", headers={"If-None-Match": f'"other", "{digest}"'})
    assert r.status_code == 304 and r.content == b"" and r.headers["etag"] == f'"{digest}"'
    h = client.head(f"/api/v1/blobs/{digest}")
    assert h.status_code == 200 and int(h.headers["content-length"]) == len(data) and h.content == b""


@pytest.mark.parametrize("header, sl", [
    ("bytes=0-9", slice(0, 10)), ("bytes=10-", slice(10, None)), ("bytes=-7", slice(-7, None)),
    ("bytes=5-999999999", slice(5, None)),
])
def test_range_requests_return_206_with_content_range(client, weights, header, sl):
    digest, data = weights
    r = client.get(f"/api/v1/blobs/{digest}", headers={"Range": header})
    assert r.status_code == 206 and r.content == data[sl]
    start = sl.start if sl.start is None or sl.start >= 0 else len(data) + sl.start
    start = start or 0
    assert r.headers["content-range"] == f"bytes {start}-{start + len(data[sl]) - 1}/{len(data)}"


def test_unsatisfiable_range_is_416_and_unknown_blob_is_404(client, weights):
    digest, data = weights
    r = client.get(f"/api/v1/blobs/{digest}", headers={"Range": f"bytes={len(data)}-"})
    assert r.status_code == 416 and r.headers["content-range"] == f"bytes */{len(data)}"
    assert r.json()["error"] == "range_not_satisfiable"
    r = client.get(f"/api/v1/blobs/{'0' * 64}")
    assert r.status_code == 404 and r.json()["error"] == "blob_not_found"
    r = client.get(f"/api/v1/blobs/{digest}", headers={"Range": "items=1-2"})
    assert r.status_code == 200 and r.content == data  # a range unit we do not know is ignored (RFC 9110)
