"""The hashing helpers: known vectors, any bytes in any chunking, digest validation."""

from __future__ import annotations

import hashlib
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from registry.errors import IntegrityFailure, InvalidInput
from registry.storage import LocalBlobStore, check_digest, hash_stream, sha256_file
from registry.storage.digest import VerifyingReader, read_up_to


def test_sha256_file_matches_the_published_vectors(tmp_path):
    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "abc").write_bytes(b"abc")
    assert sha256_file(tmp_path / "empty") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert sha256_file(tmp_path / "abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


class Trickle(io.RawIOBase):
    """A stream that returns at most `step` bytes per read, like a socket."""

    def __init__(self, data: bytes, step: int):
        super().__init__()
        self._data, self._pos, self._step = data, 0, step

    def readable(self):
        return True

    def readinto(self, b):
        n = min(len(b), self._step, len(self._data) - self._pos)
        b[:n] = self._data[self._pos : self._pos + n]
        self._pos += n
        return n


@given(data=st.binary(max_size=5000), chunk=st.integers(1, 700), step=st.integers(1, 900))
@settings(max_examples=150, deadline=None)
def test_hash_stream_equals_hashlib_for_any_bytes_and_chunking(data, chunk, step):
    sink = io.BytesIO()
    seen = []
    digest, size = hash_stream(Trickle(data, step), sink=sink, progress=seen.append, chunk_size=chunk)
    assert (digest, size) == (hashlib.sha256(data).hexdigest(), len(data))
    assert sink.getvalue() == data and sum(seen) == len(data)


@given(data=st.binary(max_size=3000), n=st.integers(0, 4000), step=st.integers(1, 500))
@settings(max_examples=100, deadline=None)
def test_read_up_to_reads_exactly_n_bytes_unless_the_stream_ends(data, n, step):
    assert read_up_to(Trickle(data, step), n) == data[:n]


@pytest.fixture(scope="module")
def ranged_store(tmp_path_factory):
    store = LocalBlobStore(tmp_path_factory.mktemp("ranged"))
    data = bytes(range(256)) * 40
    return store, store.put_stream(io.BytesIO(data)).digest, data


@given(start=st.integers(0, 10_240), length=st.one_of(st.none(), st.integers(0, 12_000)))
@settings(max_examples=100, deadline=None)
def test_ranged_open_returns_exactly_the_python_slice(ranged_store, start, length):
    store, digest, data = ranged_store
    end = None if length is None else start + length
    with store.open(digest, start=start, end=end) as f:
        assert f.read() == data[start:end]


def test_verifying_reader_raises_only_when_eof_is_reached():
    reader = VerifyingReader(io.BytesIO(b"abc"), expected="0" * 64, where="test")
    assert reader.read(3) == b"abc"
    with pytest.raises(IntegrityFailure):
        reader.read(1)


@pytest.mark.parametrize("bad", ["", "abc", "G" * 64, "A" * 64, "sha256:" + "a" * 64, "a" * 63 + "/", None])
def test_check_digest_accepts_only_64_lowercase_hex(bad):
    with pytest.raises(InvalidInput):
        check_digest(bad)
    assert check_digest("a" * 64) == "a" * 64
