"""The local folder store: layout, durability steps, a really full disk, real concurrent processes."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import time
import tracemalloc

import pytest

from registry.errors import DiskFull, RegistryError
from registry.storage import LocalBlobStore, open_store
from registry.storage.digest import sha256_file
from tests.factories import put_from_two_processes


def test_blob_lands_at_blobs_sha256_fanout_and_tmp_is_left_empty(local_store):
    info = local_store.put_stream(io.BytesIO(b"hello"))
    d = info.digest
    assert (local_store.root / "blobs" / "sha256" / d[:2] / d).read_bytes() == b"hello"
    assert os.listdir(local_store.root / "tmp") == []


def test_stored_blobs_are_read_only(local_store):
    d = local_store.put_stream(io.BytesIO(b"hello")).digest
    assert stat.S_IMODE(local_store.path(d).stat().st_mode) == 0o444


def test_put_streams_in_bounded_memory(local_store, tmp_path):
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        for _ in range(32):
            f.write(os.urandom(1024 * 1024))
    tracemalloc.start()
    try:
        local_store.put_file(big)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * 1024 * 1024, f"put of a 32 MiB file peaked at {peak} bytes of Python memory"


def test_put_onto_a_full_disk_raises_disk_full_with_one_line_and_leaves_no_temp_file(tmpfs, tmp_path):
    store = LocalBlobStore(tmpfs / "store")
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(3 * 1024 * 1024))  # the tmpfs holds 2 MiB
    with pytest.raises(DiskFull) as e:
        store.put_file(big)
    assert "\n" not in str(e.value) and "no space left" in str(e.value)
    assert e.value.status == 507
    assert os.listdir(store.tmp_dir) == []
    assert list(store.iter_digests()) == []


def test_store_works_again_once_a_full_disk_failure_has_cleaned_up(tmpfs, tmp_path):
    store = LocalBlobStore(tmpfs / "store")
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(3 * 1024 * 1024))
    with pytest.raises(DiskFull):
        store.put_file(big)
    small = store.put_stream(io.BytesIO(os.urandom(1024 * 1024)))
    assert small.created and store.verify(small.digest)


def test_repeated_put_with_known_digest_writes_no_copy_so_it_succeeds_on_a_full_disk(tmpfs, tmp_path):
    store = LocalBlobStore(tmpfs / "store")
    data = os.urandom(1200 * 1024)  # a second copy would not fit in the 2 MiB tmpfs
    src = tmp_path / "w.bin"
    src.write_bytes(data)
    first = store.put_file(src)
    again = store.put_file(src, expected=first.digest)
    assert (again.digest, again.size, again.created) == (first.digest, len(data), False)
    with pytest.raises(DiskFull):
        store.put_file(src)  # without the digest the bytes are written before they are known


def test_fetch_onto_a_full_disk_raises_disk_full_and_leaves_no_partial_file(local_store, tmpfs):
    d = local_store.put_stream(io.BytesIO(os.urandom(3 * 1024 * 1024))).digest
    with pytest.raises(DiskFull):
        local_store.fetch(d, tmpfs / "out.bin")
    assert os.listdir(tmpfs) == []


@pytest.mark.parametrize("with_expected", [False, True])
def test_put_replaces_a_truncated_stored_blob(local_store, with_expected):
    data = b"x" * 10_000
    d = local_store.put_stream(io.BytesIO(data)).digest
    os.chmod(local_store.path(d), 0o644)
    os.truncate(local_store.path(d), 10)
    assert not local_store.verify(d)
    assert local_store.put_stream(io.BytesIO(data), expected=d if with_expected else None).created
    assert local_store.verify(d)


def test_open_store_accepts_plain_paths_and_file_urls(tmp_path):
    assert open_store(str(tmp_path)).root == tmp_path
    assert open_store(tmp_path.as_uri()).root == tmp_path
    assert open_store(f"file://localhost{tmp_path}").root == tmp_path
    assert open_store(str(tmp_path)).url == tmp_path.as_uri()


def test_file_url_with_a_remote_host_is_refused(tmp_path):
    with pytest.raises(RegistryError):
        open_store("file://otherhost/data")


def test_clean_tmp_removes_only_stale_temp_files(local_store):
    local_store.put_stream(io.BytesIO(b"x"))
    stale = local_store.tmp_dir / "put-1-dead.tmp"
    fresh = local_store.tmp_dir / "put-2-live.tmp"
    stale.write_bytes(b"half")
    fresh.write_bytes(b"half")
    old = time.time() - 2 * 24 * 3600
    os.utime(stale, (old, old))
    assert local_store.clean_tmp() == 1
    assert not stale.exists() and fresh.exists()


def test_concurrent_puts_of_same_content_from_two_processes_both_succeed_with_one_blob(tmp_path):
    data = os.urandom(16 * 1024 * 1024)
    src = tmp_path / "weights.bin"
    src.write_bytes(data)
    root = tmp_path / "store"
    results = put_from_two_processes(str(root), src)
    digest = hashlib.sha256(data).hexdigest()
    assert [r["digest"] for r in results] == [digest, digest]
    assert sorted(r["created"] for r in results) == [False, True]
    store = LocalBlobStore(root)
    assert list(store.iter_digests()) == [digest] and store.verify(digest)
    assert os.listdir(store.tmp_dir) == []


def test_a_local_store_adopts_a_file_as_its_blob_without_copying(local_store, tmp_path):
    src = tmp_path / "written-by-us"
    src.write_bytes(b"merged bytes" * 1000)
    digest = sha256_file(src)
    info = local_store.adopt(src, digest)
    assert info is not None and info.created and info.size == 12000
    assert os.path.samefile(src, local_store.path(digest))
    assert src.stat().st_mode & 0o777 == 0o444 and local_store.verify(digest)
    other = tmp_path / "same-bytes-again"
    other.write_bytes(b"merged bytes" * 1000)
    again = local_store.adopt(other, digest)
    assert again is not None and not again.created  # the first blob stays
