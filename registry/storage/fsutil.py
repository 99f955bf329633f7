"""Filesystem steps shared by the stores and the cache: temp names, fsync, verified landing."""

from __future__ import annotations

import errno
import hashlib
import os
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from registry.errors import InvalidInput, RegistryError, translate_os_error
from registry.storage.digest import Progress, mismatch
from registry.storage.directio import DirectWriter, read_ahead


def temp_name(prefix: str = "") -> str:
    """A name unique across processes and threads (pid for humans, random for uniqueness)."""
    return f"{prefix}{os.getpid()}-{uuid.uuid4().hex}.tmp"


def fsync_dir(path: Path) -> None:
    """Make a rename or link inside `path` durable."""
    _fsync(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))


def fsync_file(path: Path) -> None:
    """Make a file's bytes durable (by path: the caller wrote them through another descriptor)."""
    _fsync(path, os.O_RDONLY)


def _fsync(path: Path, flags: int) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def unlink_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def land_verified(
    chunks: Iterable[bytes],
    dest: Path,
    digest: str,
    *,
    where: str,
    progress: Progress | None = None,
    mode: int | None = None,
) -> int:
    """Write `chunks` to `dest` atomically, only if they hash to `digest`.

    The bytes go to a temp file next to `dest`, are fsynced and checked, and only then renamed over
    `dest`. On any failure the temp file is removed and `dest` is left as it was.

    Returns:
        the number of bytes written
    Raises:
        IntegrityFailure: the bytes do not hash to `digest`
        DiskFull, StorageError: the write failed
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / temp_name(f".{dest.name}.")
    h = hashlib.sha256()
    size = 0
    try:
        with open(tmp, "xb") as f:
            for chunk in chunks:
                f.write(chunk)
                h.update(chunk)
                size += len(chunk)
                if progress is not None:
                    progress(len(chunk))
            f.flush()
            os.fsync(f.fileno())
            if mode is not None:
                os.fchmod(f.fileno(), mode)
        actual = h.hexdigest()
        if actual != digest:
            raise mismatch(digest, actual, where=where)
        os.replace(tmp, dest)
        fsync_dir(dest.parent)
    except RegistryError:  # IntegrityFailure is an OSError too: it must not be re-translated
        unlink_quietly(tmp)
        raise
    except OSError as e:
        unlink_quietly(tmp)
        raise translate_os_error(e, path=str(dest)) from e
    except BaseException:
        unlink_quietly(tmp)
        raise
    return size


def open_source(path: Path) -> BinaryIO:
    """Open a file to store; a missing path or a folder is the caller's mistake, not ours."""
    try:
        return open(path, "rb")
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as e:
        raise InvalidInput(f"cannot read {path}: {e.strerror}", path=str(path)) from e
    except OSError as e:
        raise translate_os_error(e, path=str(path)) from e


FICLONE = 0x40049409  # linux/fs.h: _IOW(0x94, 9, int), share the source's extents (btrfs, xfs, bcachefs)
_NO_CLONE = {errno.EOPNOTSUPP, errno.ENOTTY, errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EPERM, errno.EBADF}


def clone_or_copy(src: Path, dest: Path, *, fsync: bool = True) -> str:
    """Make `dest` (which must not exist) a new file with `src`'s bytes: a reflink where the file
    system can share extents, else one copy. Never a link: writing to `dest` cannot change `src`.
    Nothing is hashed here (the caller knows the bytes); `fsync` makes the bytes durable before the
    caller renames a folder of them into place. Returns "reflink" or "copy".

    The copy reads `src` with sequential read-ahead straight into the aligned buffers of a
    DirectWriter, which writes them with O_DIRECT from its thread: the next read runs while the
    last buffer is written, and the copy fills no page cache. Measured on the bench VM, 2.1 GB not in
    the page cache: copy_file_range took 3.8-4.8 s with its fsync, this 3.2-3.4 s, `cp && sync` 3.1-3.5 s.
    """
    with open(src, "rb") as fi, open(dest, "xb") as fo:
        if _clone(fi, fo) is None:
            _copy_into(fi, dest, os.dup(fo.fileno()))
            how = "copy"
        else:
            how = "reflink"
        if fsync:
            os.fsync(fo.fileno())  # the same open file the bytes went into
    return how


def _copy_into(fi: BinaryIO, dest: Path, fd: int) -> None:
    """Fill the new, empty file `fd` (a descriptor of `dest`, which the writer takes) with all of `fi`."""
    size = os.fstat(fi.fileno()).st_size
    read_ahead(fi.fileno())
    w = DirectWriter(dest, fd=fd)
    try:
        w.append_from(fi.fileno(), 0, size)
        w.close()
    except BaseException:
        w.abort()
        raise


def reflinks(src_dir: Path, dest_dir: Path) -> bool:
    """Whether a file in `src_dir` can be reflinked (FICLONE) into `dest_dir`: tried on a 4 KiB
    probe file created in each, both removed. False on any error (the folders need not exist)."""
    probe = src_dir / temp_name(".reflink-probe-")
    clone = dest_dir / temp_name(".reflink-probe-")
    try:
        src_dir.mkdir(parents=True, exist_ok=True)
        with open(probe, "xb") as f:
            f.write(bytes(4096))
        with open(probe, "rb") as fi, open(clone, "xb") as fo:
            return _clone(fi, fo) is not None
    except OSError:
        return False
    finally:
        unlink_quietly(probe)
        unlink_quietly(clone)


def _clone(fi: BinaryIO, fo: BinaryIO) -> str | None:
    try:
        import fcntl

        fcntl.ioctl(fo.fileno(), FICLONE, fi.fileno())
        return "reflink"
    except (OSError, ImportError) as e:
        if isinstance(e, OSError) and e.errno not in _NO_CLONE:
            raise
    return None
