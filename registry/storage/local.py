"""Blobs in a local folder.

Layout:
    <root>/blobs/sha256/<2 hex>/<64 hex>   the blobs, read-only (0444)
    <root>/tmp/                            in-flight writes, one unique name per put

A put streams into tmp/, fsyncs, checks the digest and then hard-links the temp file to its final
name. `link` fails if the name exists, so it is an atomic create-if-absent: of two processes
putting the same bytes at once, exactly one reports created=True and neither overwrites the other.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

from registry.errors import BlobNotFound, InvalidInput, RegistryError, translate_os_error
from registry.storage.base import BlobInfo
from registry.storage.digest import (
    CHUNK,
    VerifyingReader,
    check_digest,
    hash_stream,
    is_digest,
    iter_chunks,
    mismatch,
)
from registry.storage.fsutil import fsync_dir, land_verified, open_source, temp_name, unlink_quietly

BLOB_MODE = 0o444

# link() is not offered everywhere (some FUSE and SMB mounts); rename is the fallback there.
_NO_LINK = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS}


class LocalBlobStore:
    """Content-addressed blobs under a local folder (created on first write)."""

    def __init__(self, root: Path | str):
        self.root = Path(root).expanduser().absolute()
        self.url = self.root.as_uri()
        self.blob_dir = self.root / "blobs" / "sha256"
        self.tmp_dir = self.root / "tmp"

    @classmethod
    def from_url(cls, url: str, *, s3_endpoint: str | None = None) -> LocalBlobStore:
        """"/path" or "file:///path"; `s3_endpoint` is ignored."""
        if "://" not in url:
            return cls(url)
        parts = urlsplit(url)
        if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
            raise InvalidInput(f"not a local store URL: {url}", hint="use /path or file:///path", url=url)
        return cls(unquote(parts.path))

    def __repr__(self) -> str:
        return f"LocalBlobStore({str(self.root)!r})"

    def path(self, digest: str) -> Path:
        """Where the blob lives (whether or not it exists)."""
        check_digest(digest)
        return self.blob_dir / digest[:2] / digest

    # -- writing ---------------------------------------------------------------------------

    def put_file(
        self, path: Path, *, expected: str | None = None, progress: Callable[[int], None] | None = None
    ) -> BlobInfo:
        """Store a file's bytes (streamed, verified, deduplicated).

        Raises:
            IntegrityFailure: `expected` is given and the bytes do not match it (nothing is stored)
            DiskFull: the filesystem is full (no temp file is left behind)
        """
        with open_source(Path(path)) as f:
            return self.put_stream(f, expected=expected, progress=progress)

    def put_stream(
        self, stream: BinaryIO, *, expected: str | None = None, progress: Callable[[int], None] | None = None
    ) -> BlobInfo:
        """Store a stream's bytes until EOF; see put_file."""
        if expected is not None:
            check_digest(expected)
        tmp: Path | None = None
        try:
            if expected is not None:
                known = self._already_stored(stream, expected, progress)
                if known is not None:
                    return known
            self.tmp_dir.mkdir(parents=True, exist_ok=True)
            tmp = self.tmp_dir / temp_name("put-")
            with open(tmp, "xb") as out:
                digest, size = hash_stream(stream, sink=out, progress=progress)
                out.flush()
                os.fsync(out.fileno())
                os.fchmod(out.fileno(), BLOB_MODE)
            if expected is not None and digest != expected:
                raise mismatch(expected, digest, where=f"put to {self.url}")
            created = self._publish(tmp, digest, size)
            return BlobInfo(digest=digest, size=size, created=created)
        except RegistryError:
            raise
        except OSError as e:
            raise translate_os_error(e, path=str(self.root)) from e
        finally:
            if tmp is not None:
                unlink_quietly(tmp)

    def adopt(self, path: Path, digest: str) -> BlobInfo | None:
        """Make a file this process wrote a blob without copying it: fsynced, made read-only (0444)
        and hard-linked into the layout, so the caller's path and the blob are one inode.

        The caller vouches for `digest` (it hashed the bytes while writing them); nothing is
        re-read. Returns None where a link is impossible (another file system, no link support):
        the caller then stores a copy with put_file.
        """
        check_digest(digest)
        path = Path(path)
        try:
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
                os.fchmod(fd, BLOB_MODE)
                size = os.fstat(fd).st_size
            finally:
                os.close(fd)
            self.tmp_dir.mkdir(parents=True, exist_ok=True)
            tmp = self.tmp_dir / temp_name("adopt-")
            try:
                os.link(path, tmp)
            except OSError as e:
                if e.errno in _NO_LINK or e.errno == errno.EXDEV:
                    return None
                raise
            try:
                created = self._publish(tmp, digest, size)
            finally:
                unlink_quietly(tmp)
        except RegistryError:
            raise
        except OSError as e:
            raise translate_os_error(e, path=str(self.root)) from e
        return BlobInfo(digest=digest, size=size, created=created)

    def _already_stored(
        self, stream: BinaryIO, expected: str, progress: Callable[[int], None] | None
    ) -> BlobInfo | None:
        """A repeated push names a stored digest: hash the source instead of writing a copy.

        Only for seekable sources (files, spooled uploads), so that a damaged stored copy can
        still be replaced by rewinding and writing the source the usual way.
        """
        if not self.exists(expected) or not _seekable(stream):
            return None
        start = stream.tell()
        digest, size = hash_stream(stream)
        if digest != expected:
            raise mismatch(expected, digest, where=f"put to {self.url}")
        if self.path(expected).stat().st_size != size:
            stream.seek(start)
            return None
        if progress is not None:
            progress(size)
        return BlobInfo(digest=expected, size=size, created=False)

    def _publish(self, tmp: Path, digest: str, size: int) -> bool:
        """Give the verified temp file its final name; False if the blob was already there."""
        final = self.path(digest)
        fan_out = final.parent
        for folder in (self.blob_dir.parent, self.blob_dir, fan_out):
            if not folder.is_dir():
                folder.mkdir(exist_ok=True)
                fsync_dir(folder.parent)
        try:
            os.link(tmp, final)
        except FileExistsError:
            if final.stat().st_size == size:
                return False
            # A truncated or padded blob (a crash on a filesystem without ordered writes, a
            # hand edit) would otherwise block this digest forever; the verified copy replaces it.
            os.replace(tmp, final)
        except OSError as e:
            if e.errno not in _NO_LINK:
                raise
            if final.exists():
                return False
            os.replace(tmp, final)
        fsync_dir(fan_out)
        return True

    # -- reading ---------------------------------------------------------------------------

    def _open_blob(self, digest: str) -> BinaryIO:
        path = self.path(digest)
        try:
            return open(path, "rb")
        except FileNotFoundError:
            raise BlobNotFound(f"blob {digest} is not in {self.url}", digest=digest) from None
        except OSError as e:
            raise translate_os_error(e, path=str(path)) from e

    def exists(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def size(self, digest: str) -> int:
        """Size in bytes. Raises BlobNotFound."""
        try:
            return self.path(digest).stat().st_size
        except FileNotFoundError:
            raise BlobNotFound(f"blob {digest} is not in {self.url}", digest=digest) from None

    def fetch(self, digest: str, dest: Path, *, progress: Callable[[int], None] | None = None) -> None:
        """Copy a blob to `dest` atomically, verified.

        Raises:
            BlobNotFound: no such blob
            IntegrityFailure: the stored bytes do not match the digest (`dest` is not touched)
        """
        with self._open_blob(digest) as f:
            land_verified(iter_chunks(f), Path(dest), digest, where=str(self.path(digest)), progress=progress)

    def open(self, digest: str, *, start: int = 0, end: int | None = None) -> BinaryIO:
        """A streaming reader over bytes [start, end) of a blob; use it as a context manager.

        A full read (start=0, end=None) verifies the digest when it reaches EOF and raises
        IntegrityFailure there; a ranged read (an HTTP Range request) is not verified.
        """
        _check_range(start, end)
        f = self._open_blob(digest)
        try:
            total = os.fstat(f.fileno()).st_size
            if start > total:
                raise InvalidInput(f"range start {start} is past the end of the blob ({total} bytes)", start=start)
            full = start == 0 and end is None
            if start:
                f.seek(start)
            limit = None if end is None else max(0, min(end, total) - start)
            raw = VerifyingReader(f, expected=digest if full else None, where=str(self.path(digest)), limit=limit)
        except BaseException:
            f.close()
            raise
        return _buffered(raw)

    def verify(self, digest: str) -> bool:
        """Re-hash the stored bytes. Raises BlobNotFound."""
        with self._open_blob(digest) as f:
            return hash_stream(f)[0] == digest

    def delete(self, digest: str) -> None:
        """Remove a blob; removing an absent blob is not an error (deletes may race)."""
        unlink_quietly(self.path(digest))

    def iter_digests(self) -> Iterator[str]:
        """Every stored digest, in sorted order."""
        if not self.blob_dir.is_dir():
            return
        for fan_out in sorted(self.blob_dir.iterdir()):
            if not fan_out.is_dir():
                continue
            for blob in sorted(fan_out.iterdir()):
                if is_digest(blob.name) and blob.name[:2] == fan_out.name:
                    yield blob.name

    def clean_tmp(self, *, older_than_s: float = 24 * 3600, now: float | None = None) -> int:
        """Remove temp files (and folders) left by killed or crashed writers; returns how many were removed.

        Only entries untouched for `older_than_s` go: a put in progress writes its temp file, so
        its mtime is recent.
        """
        return sweep_older_than(self.tmp_dir, older_than_s=older_than_s, now=now)


def sweep_older_than(folder: Path, *, older_than_s: float, now: float | None = None,
                     keep: tuple[str, ...] = ()) -> int:
    """Remove the entries of `folder` (files, or whole folders) not modified for `older_than_s` seconds.

    A folder's age is that of the newest thing inside it (an upload in progress writes into its
    folder's files, which does not touch the folder itself). Returns how many entries went;
    entries that vanish meanwhile (another sweep, the writer finishing) are not errors. Names in
    `keep` stay whatever their age.
    """
    import shutil
    import time

    if not folder.is_dir():
        return 0
    cutoff = (time.time() if now is None else now) - older_than_s
    removed = 0
    for entry in list(folder.iterdir()):
        if entry.name in keep:
            continue
        try:
            if entry.is_dir() and not entry.is_symlink():
                if _newest_mtime(entry) < cutoff:
                    shutil.rmtree(entry)
                    removed += 1
            elif entry.lstat().st_mtime < cutoff:
                entry.unlink()
                removed += 1
        except FileNotFoundError:
            pass
    return removed


def _newest_mtime(folder: Path) -> float:
    newest = folder.lstat().st_mtime
    for root, dirs, files in os.walk(folder):
        for name in (*dirs, *files):
            try:
                newest = max(newest, os.lstat(os.path.join(root, name)).st_mtime)
            except FileNotFoundError:
                pass
    return newest


def _seekable(stream: BinaryIO) -> bool:
    try:
        return bool(stream.seekable())
    except (AttributeError, OSError, ValueError):
        return False


def _check_range(start: int, end: int | None) -> None:
    if start < 0 or (end is not None and end < start):
        raise InvalidInput(f"invalid byte range [{start}, {end})", start=start, end=end)


def _buffered(raw: VerifyingReader) -> BinaryIO:
    import io

    return io.BufferedReader(raw, buffer_size=CHUNK)
