"""sha256 helpers: validate digests, hash files and streams, verify while reading.

Digests are lowercase sha256 hex without a prefix. Everything here streams in bounded chunks, so a
multi-gigabyte adapter never sits in memory.
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

from registry.errors import IntegrityFailure, InvalidInput

CHUNK = 1024 * 1024
_HEX64 = re.compile(r"[0-9a-f]{64}")

Progress = Callable[[int], None]


class Readable(Protocol):
    """What the hashing helpers read from: a binary file, an HTTP body, anything with read(n) -> bytes."""

    def read(self, size: int = -1, /) -> bytes: ...


class Closable(Readable, Protocol):
    def close(self) -> None: ...


class Writable(Protocol):
    """Where hash_stream copies to: a binary file, or a sink that only hashes."""

    def write(self, data: bytes, /) -> object: ...


def check_digest(digest: str) -> str:
    """Return `digest` if it is 64 lowercase hex characters, else raise InvalidInput.

    Digests become file names and object keys, so this is also what keeps `../` out of them.
    """
    if not isinstance(digest, str) or not _HEX64.fullmatch(digest):
        raise InvalidInput(f"not a sha256 digest (64 lowercase hex characters): {digest!r}", digest=str(digest))
    return digest


def is_digest(name: str) -> bool:
    return bool(_HEX64.fullmatch(name))


def sha256_b64(hex_digest: str) -> str:
    """The base64 form S3 wants in ChecksumSHA256."""
    return base64.b64encode(bytes.fromhex(hex_digest)).decode("ascii")


def iter_chunks(stream: Readable, chunk_size: int = CHUNK) -> Iterator[bytes]:
    """Yield the stream's bytes in chunks of at most `chunk_size` until EOF."""
    while True:
        chunk = stream.read(chunk_size)
        if not chunk:
            return
        yield chunk


def read_up_to(stream: Readable, n: int) -> bytes:
    """Read exactly `n` bytes, or fewer only at EOF (`read` may return short on pipes and sockets)."""
    parts: list[bytes] = []
    missing = n
    while missing > 0:
        chunk = stream.read(missing)
        if not chunk:
            break
        parts.append(chunk)
        missing -= len(chunk)
    return b"".join(parts)


def hash_stream(
    stream: Readable,
    *,
    sink: Writable | None = None,
    progress: Progress | None = None,
    chunk_size: int = CHUNK,
) -> tuple[str, int]:
    """Hash a stream to EOF, copying it to `sink` on the way.

    Returns:
        (sha256 hex, size in bytes)
    """
    h = hashlib.sha256()
    size = 0
    for chunk in iter_chunks(stream, chunk_size):
        h.update(chunk)
        if sink is not None:
            sink.write(chunk)
        size += len(chunk)
        if progress is not None:
            progress(len(chunk))
    return h.hexdigest(), size


def sha256_file(path: Path | str) -> str:
    """sha256 hex of a file's bytes, read in bounded chunks (with sequential read-ahead: directio.read_ahead)."""
    from registry.storage.directio import read_ahead

    with open(path, "rb") as f:
        read_ahead(f.fileno())
        return hash_stream(f)[0]


def mismatch(expected: str, actual: str, *, where: str) -> IntegrityFailure:
    return IntegrityFailure(
        f"sha256 mismatch at {where}: expected {expected}, got {actual}",
        digest=expected,
        actual=actual,
        where=where,
    )


class VerifyingReader(io.RawIOBase):
    """A raw reader over `source` that hashes what passes through and checks it at EOF.

    With `expected=None` it only passes bytes through (ranged reads cannot be verified). With a
    `limit` it stops after that many bytes. It is not seekable, so the hash always covers the bytes
    in order.
    """

    def __init__(
        self,
        source: Closable,
        *,
        expected: str | None,
        where: str,
        limit: int | None = None,
        on_close: Callable[[], None] | None = None,
    ):
        super().__init__()
        self._source = source
        self._expected = expected
        self._where = where
        self._remaining = limit
        self._on_close = on_close
        self._hash = hashlib.sha256() if expected is not None else None
        self._checked = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        want = len(buffer)
        if self._remaining is not None:
            want = min(want, self._remaining)
        data = self._source.read(want) if want > 0 else b""
        if not data:
            if want > 0 or self._remaining == 0:
                self._check()
            return 0
        n = len(data)
        buffer[:n] = data
        if self._remaining is not None:
            self._remaining -= n
        if self._hash is not None:
            self._hash.update(data)
        return n

    def _check(self) -> None:
        if self._hash is None or self._expected is None or self._checked:  # both set, or neither
            return
        self._checked = True
        actual = self._hash.hexdigest()
        if actual != self._expected:
            raise mismatch(self._expected, actual, where=self._where)

    def close(self) -> None:
        if not self.closed:
            try:
                if self._on_close is not None:
                    self._on_close()
                else:
                    self._source.close()
            finally:
                super().close()
