"""Turn a set of blobs into a folder of files, through a local digest-keyed cache.

`resolve` uses this to hand out an adapter version as a plain folder:

    <cache_root>/blobs/sha256/<2 hex>/<64 hex>   verified copies of blobs, read-only
    <dest>/<relpath>                             hard links to those (copies across filesystems)

The folder is built in a temp folder next to `dest` and renamed into place, so `dest` is either
absent or complete; a second call finds it complete and returns at once.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Protocol

from registry.errors import InvalidInput, RegistryError, StorageError, translate_os_error
from registry.storage.digest import check_digest
from registry.storage.fsutil import fsync_dir, temp_name

CACHE_MODE = 0o444


def cache_path(cache_root: Path, digest: str) -> Path:
    """Where the verified cached copy of a blob lives."""
    check_digest(digest)
    return Path(cache_root) / "blobs" / "sha256" / digest[:2] / digest


class Fetches(Protocol):
    """What a folder is built from: anything that lands a blob, verified, at a path (a BlobStore,
    or the HTTP client's blob route)."""

    def fetch(self, digest: str, dest: Path) -> None: ...


def cached(store: Fetches, digest: str, cache_root: Path) -> Path:
    """The path of a verified local copy of a blob, fetching it on first use."""
    path = cache_path(cache_root, digest)
    if not path.is_file():
        store.fetch(digest, path)
        try:
            os.chmod(path, CACHE_MODE)
        except FileNotFoundError:
            pass  # evicted by someone else between fetch and chmod; the next call refetches
    return path


def materialize(store: Fetches, files: Mapping[str, str], dest: Path, *, cache_root: Path) -> Path:
    """Build `dest` as a folder holding `files` ({relative posix path: digest}).

    Each blob is fetched (verified) into the cache once, then hard-linked (or copied) into a temp
    folder that is renamed to `dest`. Idempotent: if `dest` already holds exactly these files it
    is returned untouched; a `dest` that holds anything else is replaced.

    Returns:
        dest
    Raises:
        InvalidInput: a relative path is absolute, has "..", or is both a file and a folder
        BlobNotFound, IntegrityFailure: a blob is missing or corrupt (dest is not touched)
        DiskFull, StorageError: writing failed
    """
    dest = Path(dest)
    wanted = {_check_relpath(rel): check_digest(digest) for rel, digest in files.items()}
    _check_no_file_dir_clash(wanted)
    if _is_complete(dest, wanted, cache_root):
        return dest
    sources = {rel: cached(store, digest, cache_root) for rel, digest in wanted.items()}
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        build = dest.parent / temp_name(f".{dest.name}.")
        build.mkdir()
    except OSError as e:
        raise translate_os_error(e, path=str(dest)) from e
    try:
        for rel, src in sources.items():
            target = build / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            _link_or_copy(src, target)
        _fsync_tree(build)
        _move_into_place(build, dest, wanted, cache_root)
    except RegistryError:
        shutil.rmtree(build, ignore_errors=True)
        raise
    except OSError as e:
        shutil.rmtree(build, ignore_errors=True)
        raise translate_os_error(e, path=str(dest)) from e
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    return dest


def _check_relpath(rel: str) -> str:
    p = PurePosixPath(rel)
    if not rel or p.is_absolute() or any(part in ("", ".", "..") for part in rel.split("/")) or "\\" in rel:
        raise InvalidInput(f"not a safe relative path: {rel!r}", path=rel)
    return str(p)


def _check_no_file_dir_clash(wanted: Mapping[str, str]) -> None:
    dirs = {str(parent) for rel in wanted for parent in PurePosixPath(rel).parents}
    clash = sorted(dirs & set(wanted))
    if clash:
        raise InvalidInput(f"{clash[0]!r} is both a file and a folder", path=clash[0])


def _is_complete(dest: Path, wanted: Mapping[str, str], cache_root: Path) -> bool:
    """dest holds exactly the wanted files, each the size of its cached blob (when cached)."""
    if not dest.is_dir():
        return False
    present = {p.relative_to(dest).as_posix() for p in dest.rglob("*") if not p.is_dir()}
    if present != set(wanted):
        return False
    for rel, digest in wanted.items():
        try:
            cached_size = cache_path(cache_root, digest).stat().st_size
        except FileNotFoundError:
            continue
        if (dest / rel).stat().st_size != cached_size:
            return False
    return True


def _link_or_copy(src: Path, target: Path) -> None:
    try:
        os.link(src, target)
    except OSError as e:
        if e.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
        shutil.copyfile(src, target)


def _fsync_tree(root: Path) -> None:
    for folder, _dirs, _files in os.walk(root):
        fsync_dir(Path(folder))


def _move_into_place(build: Path, dest: Path, wanted: Mapping[str, str], cache_root: Path) -> None:
    try:
        os.rename(build, dest)
    except OSError as e:
        if e.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR):
            raise
        if _is_complete(dest, wanted, cache_root):
            # Another process finished the same folder first.
            shutil.rmtree(build, ignore_errors=True)
            return
        # dest holds something else (a stale or hand-edited folder): swap it out, then drop it.
        trash = dest.parent / temp_name(f".{dest.name}.old.")
        os.rename(dest, trash)
        try:
            os.rename(build, dest)
        except OSError as e2:
            raise StorageError(f"could not move {build} into place at {dest}: {e2}", path=str(dest)) from e2
        finally:
            shutil.rmtree(trash, ignore_errors=True)
    fsync_dir(dest.parent)
