"""Behaviour every blob store shares, run against the local folder and S3 (moto on loopback)."""

from __future__ import annotations

import hashlib
import io
import os

import pytest

from registry.errors import BlobNotFound, IntegrityFailure, InvalidInput
from registry.storage import BlobInfo, BlobStore
from tests.factories import corrupt, stored_names, write_file

DATA = b"adapter weights " * 1000
DIGEST = hashlib.sha256(DATA).hexdigest()
OTHER = hashlib.sha256(b"something else").hexdigest()


def test_store_satisfies_the_blobstore_protocol(store):
    assert isinstance(store, BlobStore)


def test_put_returns_the_sha256_and_size(store, tmp_path):
    info = store.put_file(write_file(tmp_path / "a.bin", DATA))
    assert info == BlobInfo(digest=DIGEST, size=len(DATA), created=True)
    assert store.exists(DIGEST)
    assert store.size(DIGEST) == len(DATA)


def test_second_put_of_same_bytes_stores_once_and_returns_created_false(store, tmp_path):
    path = write_file(tmp_path / "a.bin", DATA)
    first = store.put_file(path)
    names = stored_names(store)
    second = store.put_file(path)
    assert first.created and not second.created
    assert second.digest == first.digest and second.size == first.size
    assert stored_names(store) == names
    assert list(store.iter_digests()) == [DIGEST]


def test_put_stream_and_put_file_of_same_bytes_share_one_blob(store, tmp_path):
    assert store.put_stream(io.BytesIO(DATA)).created
    assert not store.put_file(write_file(tmp_path / "a.bin", DATA)).created
    assert list(store.iter_digests()) == [DIGEST]


def test_put_with_matching_expected_digest_stores_the_blob(store):
    assert store.put_stream(io.BytesIO(DATA), expected=DIGEST) == BlobInfo(DIGEST, len(DATA), True)


def test_put_with_wrong_expected_digest_raises_and_leaves_nothing_visible(store, tmp_path):
    with pytest.raises(IntegrityFailure) as e:
        store.put_file(write_file(tmp_path / "a.bin", DATA), expected=OTHER)
    assert e.value.digest == OTHER and e.value.actual == DIGEST
    assert not store.exists(OTHER) and not store.exists(DIGEST)
    assert [n for n in stored_names(store) if "blobs/" in n] == []
    assert [n for n in stored_names(store) if not n.startswith("tmp/")] == []


def test_wrong_expected_digest_is_reported_even_when_that_blob_already_exists(store):
    store.put_stream(io.BytesIO(b"the real blob"))
    real = hashlib.sha256(b"the real blob").hexdigest()
    with pytest.raises(IntegrityFailure):
        store.put_stream(io.BytesIO(b"different bytes"), expected=real)
    assert store.verify(real)


def test_empty_blob_round_trips(store, tmp_path):
    empty = hashlib.sha256(b"").hexdigest()
    assert store.put_stream(io.BytesIO(b"")) == BlobInfo(empty, 0, True)
    store.fetch(empty, tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == b""
    with store.open(empty) as f:
        assert f.read() == b""


def test_fetch_writes_the_bytes_and_creates_parent_folders(store, tmp_path):
    store.put_stream(io.BytesIO(DATA))
    dest = tmp_path / "deep" / "er" / "model.safetensors"
    store.fetch(DIGEST, dest)
    assert dest.read_bytes() == DATA
    assert os.listdir(dest.parent) == ["model.safetensors"]  # no temp file left beside it


def test_fetch_replaces_an_existing_file_atomically(store, tmp_path):
    store.put_stream(io.BytesIO(DATA))
    dest = tmp_path / "out.bin"
    dest.write_bytes(b"stale")
    store.fetch(DIGEST, dest)
    assert dest.read_bytes() == DATA


def test_missing_blob_raises_blob_not_found_everywhere(store, tmp_path):
    dest = tmp_path / "out.bin"
    with pytest.raises(BlobNotFound):
        store.fetch(DIGEST, dest)
    assert not dest.exists()
    with pytest.raises(BlobNotFound):
        store.size(DIGEST)
    with pytest.raises(BlobNotFound):
        store.open(DIGEST)
    with pytest.raises(BlobNotFound):
        store.verify(DIGEST)
    assert not store.exists(DIGEST)
    assert isinstance(BlobNotFound(), FileNotFoundError)


def test_flipped_byte_in_stored_blob_is_detected_by_verify_fetch_and_full_open(store, tmp_path):
    store.put_stream(io.BytesIO(DATA))
    assert store.verify(DIGEST)
    corrupt(store, DIGEST, offset=1234)

    assert store.verify(DIGEST) is False
    dest = tmp_path / "out" / "model.bin"
    with pytest.raises(IntegrityFailure):
        store.fetch(DIGEST, dest)
    assert os.listdir(dest.parent) == []  # neither dest nor a temp file
    with pytest.raises(IntegrityFailure):
        with store.open(DIGEST) as f:
            while f.read(100):
                pass


def test_full_open_streams_the_whole_blob_and_verifies_at_eof(store):
    store.put_stream(io.BytesIO(DATA))
    with store.open(DIGEST) as f:
        chunks = []
        while chunk := f.read(777):
            chunks.append(chunk)
    assert b"".join(chunks) == DATA


def test_ranged_open_returns_the_slice_and_does_not_verify(store):
    store.put_stream(io.BytesIO(DATA))
    corrupt(store, DIGEST, offset=0)  # outside every range below, and a ranged read must not care
    n = len(DATA)
    for start, end, want in [
        (1, 11, DATA[1:11]),
        (100, None, DATA[100:]),
        (n - 5, n + 100, DATA[n - 5 :]),
        (n, None, b""),
        (7, 7, b""),
    ]:
        with store.open(DIGEST, start=start, end=end) as f:
            assert f.read() == want, (start, end)


def test_open_rejects_negative_reversed_and_past_the_end_ranges(store):
    store.put_stream(io.BytesIO(DATA))
    for start, end in [(-1, None), (10, 5), (len(DATA) + 1, None)]:
        with pytest.raises(InvalidInput):
            store.open(DIGEST, start=start, end=end)


def test_delete_removes_the_blob_and_deleting_again_is_fine(store):
    store.put_stream(io.BytesIO(DATA))
    store.delete(DIGEST)
    assert not store.exists(DIGEST)
    assert list(store.iter_digests()) == []
    store.delete(DIGEST)


def test_iter_digests_lists_every_blob_in_sorted_order(store):
    digests = {store.put_stream(io.BytesIO(f"blob {i}".encode())).digest for i in range(7)}
    assert list(store.iter_digests()) == sorted(digests)


def test_progress_reports_every_byte_once(store, tmp_path):
    seen: list[int] = []
    store.put_file(write_file(tmp_path / "a.bin", DATA), progress=seen.append)
    assert sum(seen) == len(DATA)
    fetched: list[int] = []
    store.fetch(DIGEST, tmp_path / "out.bin", progress=fetched.append)
    assert sum(fetched) == len(DATA)


@pytest.mark.parametrize("bad", ["../../etc/passwd", DIGEST.upper(), f"sha256:{DIGEST}", DIGEST[:-1], ""])
def test_malformed_digest_is_rejected_before_touching_storage(store, bad):
    for call in (store.exists, store.size, store.verify, store.delete, store.open):
        with pytest.raises(InvalidInput):
            call(bad)
    with pytest.raises(InvalidInput):
        store.put_stream(io.BytesIO(DATA), expected=bad)


def test_put_file_of_a_missing_path_is_invalid_input(store, tmp_path):
    with pytest.raises(InvalidInput):
        store.put_file(tmp_path / "nope.bin")
