"""materialize: a folder of files built from blobs through a verified, digest-keyed cache."""

from __future__ import annotations

import hashlib
import io
import os

import pytest

from registry.errors import BlobNotFound, IntegrityFailure, InvalidInput
from registry.storage import cache_path, materialize
from tests.factories import corrupt

FILES = {
    "adapter_config.json": b'{"r": 8}',
    "adapter_model.safetensors": b"\x00" * 5000,
    "tokenizer/tokenizer.json": b"{}",
    "copy_of_config.json": b'{"r": 8}',  # same bytes as another file: one blob, two names
}


@pytest.fixture
def manifest(store):
    return {rel: store.put_stream(io.BytesIO(data)).digest for rel, data in FILES.items()}


def tree(folder) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_materialize_builds_the_folder_of_files(store, manifest, tmp_path):
    dest = materialize(store, manifest, tmp_path / "out" / "v3", cache_root=tmp_path / "cache")
    assert dest == tmp_path / "out" / "v3"
    assert tree(dest) == FILES
    assert os.listdir(dest.parent) == ["v3"]  # no temp build folder left beside it


def test_materialized_files_are_hard_links_to_the_verified_cache(local_store, tmp_path):
    digest = local_store.put_stream(io.BytesIO(b"weights")).digest
    dest = materialize(local_store, {"w.bin": digest}, tmp_path / "out", cache_root=tmp_path / "cache")
    assert os.path.samefile(dest / "w.bin", cache_path(tmp_path / "cache", digest))


def test_second_materialize_of_a_complete_folder_fetches_nothing(local_store, tmp_path):
    manifest = {rel: local_store.put_stream(io.BytesIO(data)).digest for rel, data in FILES.items()}
    dest = materialize(local_store, manifest, tmp_path / "out", cache_root=tmp_path / "cache")
    inode = (dest / "adapter_config.json").stat().st_ino
    for digest in set(manifest.values()):
        local_store.delete(digest)  # a fetch would now fail
    assert materialize(local_store, manifest, dest, cache_root=tmp_path / "cache") == dest
    assert (dest / "adapter_config.json").stat().st_ino == inode


def test_materialize_replaces_a_folder_that_holds_other_files(store, manifest, tmp_path):
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "stale.bin").write_bytes(b"old")
    materialize(store, manifest, dest, cache_root=tmp_path / "cache")
    assert tree(dest) == FILES


def test_materialize_with_a_corrupt_blob_raises_and_leaves_no_folder(store, manifest, tmp_path):
    corrupt(store, manifest["adapter_model.safetensors"], offset=10)
    with pytest.raises(IntegrityFailure):
        materialize(store, manifest, tmp_path / "out" / "v1", cache_root=tmp_path / "cache")
    assert not (tmp_path / "out" / "v1").exists()
    assert not cache_path(tmp_path / "cache", manifest["adapter_model.safetensors"]).exists()


def test_materialize_with_a_missing_blob_raises_blob_not_found(store, tmp_path):
    missing = hashlib.sha256(b"never stored").hexdigest()
    with pytest.raises(BlobNotFound):
        materialize(store, {"a.bin": missing}, tmp_path / "out", cache_root=tmp_path / "cache")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("rel", ["/etc/passwd", "../escape", "a/../../b", "", "a//b", "./a", "a\\b"])
def test_materialize_rejects_unsafe_relative_paths(local_store, tmp_path, rel):
    digest = local_store.put_stream(io.BytesIO(b"x")).digest
    with pytest.raises(InvalidInput):
        materialize(local_store, {rel: digest}, tmp_path / "out", cache_root=tmp_path / "cache")
    assert not (tmp_path / "out").exists()


def test_materialize_rejects_a_name_that_is_both_file_and_folder(local_store, tmp_path):
    digest = local_store.put_stream(io.BytesIO(b"x")).digest
    with pytest.raises(InvalidInput):
        materialize(local_store, {"a": digest, "a/b": digest}, tmp_path / "out", cache_root=tmp_path / "cache")


def test_two_threads_materializing_the_same_folder_both_get_it_complete(local_store, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    manifest = {f"shard-{i}.bin": local_store.put_stream(io.BytesIO(os.urandom(300_000))).digest for i in range(6)}
    dest = tmp_path / "out" / "v1"
    with ThreadPoolExecutor(2) as pool:
        build = lambda _: materialize(local_store, manifest, dest, cache_root=tmp_path / "cache")  # noqa: E731
        results = list(pool.map(build, [0, 1]))
    assert results == [dest, dest]
    assert sorted(os.listdir(dest)) == sorted(manifest)
    assert os.listdir(dest.parent) == ["v1"]
