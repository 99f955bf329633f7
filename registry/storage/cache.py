"""Turn a set of blobs into a folder of files, through a local digest-keyed cache.

`resolve` uses this to hand out an adapter version as a plain folder:

    <cache_root>/blobs/sha256/<2 hex>/<64 hex>   verified copies of blobs, read-only
    <dest>/<relpath>                             hard links to those (copies across filesystems)

The folder is built in a temp folder next to `dest` and renamed into place, so `dest` is either
absent or complete; a second call finds it complete and returns at once.

A folder others could have written to (the merged-model cache: its path is computable from
public fields) is `sealed`: a marker naming exactly the files it was built with is written into
the build folder, so it appears with the folder in one rename, and a folder without a matching
marker is never taken as complete. Sizes are checked against the catalog's (`sizes`), the small
files named in `hashed` against their digests; `mismatched` checks every byte when it matters
(before a publish).
"""

from __future__ import annotations

import errno
import functools
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Collection, Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import NoReturn, Protocol

from registry.errors import InvalidInput, RegistryError, StorageError, translate_os_error
from registry.storage.digest import check_digest, sha256_file
from registry.storage.fsutil import clone_or_copy, fsync_dir, fsync_file, temp_name

CACHE_MODE = 0o444
MARKER = ".adapter-registry-folder"  # in a sealed folder: which files it was built with (never published)


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


def cached_verified(store: Fetches, digest: str, cache_root: Path) -> Path:
    """`cached`, with the copy's sha256 checked now: a cached copy can be changed through a hard link
    to it (the folders resolve hands out), so a changed one is dropped and fetched again, verified."""
    path = cached(store, digest, cache_root)
    if sha256_file(path) != digest:
        evict(cache_root, [digest])
        path = cached(store, digest, cache_root)
    return path


def materialize(store: Fetches, files: Mapping[str, str], dest: Path, *, cache_root: Path,
                sizes: Mapping[str, int] | None = None, sealed: bool = False, hashed: Collection[str] = ()) -> Path:
    """Build `dest` as a folder holding `files` ({relative posix path: digest}).

    Each blob is fetched (verified) into the cache once, then hard-linked (or copied) into a temp
    folder that is renamed to `dest`. Idempotent: if `dest` already holds exactly these files it
    is returned untouched; a `dest` that holds anything else is replaced.

    Args:
        sizes: the size each file must have (else the size of its cached blob, when cached)
        sealed: `dest` carries a marker naming these files, and a `dest` without it is replaced
        hashed: files whose sha256 is checked before an existing `dest` is trusted (small ones)
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
    complete = _completeness(wanted, cache_root, sizes=sizes, sealed=sealed, hashed=hashed)
    if complete(dest):
        return dest
    sources = {rel: (cached_verified if rel in hashed else cached)(store, digest, cache_root)
               for rel, digest in wanted.items()}
    build = build_beside(dest)
    try:
        _fill(build, sources, _link_or_copy)
        if sealed:
            _write_seal(build, wanted)
        _fsync_tree(build)
        _move_into_place(build, dest, complete)
    except BaseException as e:
        _discard_build(build, dest, e)
    return dest


def install(folder: Path, dest: Path, files: Mapping[str, str], *, cache_root: Path,
            sizes: Mapping[str, int] | None = None, hashed: Collection[str] = ()) -> bool:
    """Seal a folder this process wrote (`folder` holds exactly `files`) and move it to `dest`.

    A `dest` that is already complete and sealed for these files is kept (`folder` is left alone);
    anything else there is replaced. Returns True when `folder` was moved into place.
    """
    wanted = {_check_relpath(rel): check_digest(digest) for rel, digest in files.items()}
    complete = _completeness(wanted, cache_root, sizes=sizes, sealed=True, hashed=hashed)
    if complete(dest):
        return False
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        _write_seal(folder, wanted)
        fsync_dir(folder)
        _move_into_place(folder, dest, complete, keep_build=True)
    except OSError as e:
        raise translate_os_error(e, path=str(dest)) from e
    return not folder.exists()


def export_files(sources: Mapping[str, Path], dest: Path, *, build: Path | None = None) -> Path:
    """Copy `sources` ({relative path: a file the caller checked}) into a new folder `dest` the user owns.

    Each file is a reflink where the file system allows, else one copy (fsutil.clone_or_copy), never
    a hard link: a user writing to `dest` cannot change a cached file or a stored blob. Nothing is
    hashed (the caller's completeness check is the integrity rule). Built beside `dest` and
    renamed, so `dest` is absent or complete. Every file is copied first and fsynced after.

    `build` is a folder from `build_beside(dest)` that already holds some of the files, written
    by this process from the same bytes as their sources (the merge engine's second copy of each
    shard): a file there at its source's size is kept (and fsynced), anything else is replaced.
    The caller removes `build` when this raises before it was renamed.

    Raises:
        AlreadyExists: `dest` appeared meanwhile
        DiskFull, StorageError: writing failed (nothing is left at or beside `dest`)
    """
    from registry.errors import AlreadyExists

    dest = Path(dest)
    wanted = {_check_relpath(rel): Path(src) for rel, src in sources.items()}
    _check_no_file_dir_clash(wanted)
    build = build_beside(dest) if build is None else Path(build)
    try:
        _drop_strays(build, wanted)
        _fill(build, {rel: src for rel, src in wanted.items() if not _same_size(build / rel, src)},
              functools.partial(clone_or_copy, fsync=False))
        for rel in sorted(wanted):
            fsync_file(build / rel)
        _fsync_tree(build)
        if dest.exists():
            raise AlreadyExists(f"{dest} already exists", path=str(dest))
        os.rename(build, dest)
        fsync_dir(dest.parent)
    except BaseException as e:
        _discard_build(build, dest, e)
    return dest


def _same_size(target: Path, src: Path) -> bool:
    try:
        return not target.is_symlink() and target.stat().st_size == src.stat().st_size
    except FileNotFoundError:
        return False


def _drop_strays(build: Path, wanted: Mapping[str, Path]) -> None:
    """Remove what a prefilled `build` holds beyond `wanted` (and a wrong-size file, copied again)."""
    for p in sorted(build.rglob("*"), reverse=True):
        rel = p.relative_to(build).as_posix()
        if p.is_symlink() or (p.is_file() and (rel not in wanted or not _same_size(p, wanted[rel]))):
            p.unlink()
        elif p.is_dir() and not any(k.startswith(rel + "/") for k in wanted):
            shutil.rmtree(p)


def build_beside(dest: Path) -> Path:
    """A new empty temp folder beside `dest`, renamed to it once complete (never visible half-built).

    Build folders of `dest` that a killed process left behind (`sweep_stale_builds`) go first.
    """
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        sweep_stale_builds(dest)
        build = dest.parent / temp_name(f".{dest.name}.")
        build.mkdir()
    except OSError as e:
        raise translate_os_error(e, path=str(dest)) from e
    return build


STALE_BUILD_S = 600.0


def sweep_stale_builds(dest: Path, *, older_than_s: float = STALE_BUILD_S) -> int:
    """Remove the hidden build folders of `dest` (`.NAME.PID-HEX.tmp` beside it) whose process is
    gone and which nothing has touched for `older_than_s` (a merge killed while it wrote `--out`
    leaves one, which can be as large as the model). A live pid, or a recent folder (which another
    host sharing the file system may be writing), is left alone. Returns how many were removed."""
    import re
    import time

    pattern = re.compile(re.escape(f".{dest.name}.") + r"(\d+)-[0-9a-f]{32}\.tmp")
    removed = 0
    try:
        entries = list(dest.parent.iterdir())
    except OSError:
        return 0
    for p in entries:
        m = pattern.fullmatch(p.name)
        try:
            if (m is None or p.is_symlink() or not p.is_dir() or _alive(int(m.group(1)))
                    or time.time() - p.stat().st_mtime < older_than_s):
                continue
        except OSError:
            continue
        shutil.rmtree(p, ignore_errors=True)
        removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, not ours to signal
    return True


def _fill(build: Path, sources: Mapping[str, Path], put: Callable[[Path, Path], object]) -> None:
    """Put each source file at its relative path under `build` (`put(src, target)`: link or copy)."""
    for rel, src in sorted(sources.items()):
        target = build / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        put(src, target)


def _discard_build(build: Path, dest: Path, e: BaseException) -> NoReturn:
    """Remove a half-built folder and re-raise `e` (a foreign OSError as the registry's error for `dest`)."""
    shutil.rmtree(build, ignore_errors=True)
    if isinstance(e, OSError) and not isinstance(e, RegistryError):
        raise translate_os_error(e, path=str(dest)) from e
    raise e


def mismatched(folder: Path, files: Mapping[str, str]) -> list[str]:
    """The files of `files` that `folder` lacks or whose sha256 differs (reads every byte)."""
    bad = []
    for rel, digest in sorted(files.items()):
        path = Path(folder) / rel
        try:
            ok = not path.is_symlink() and sha256_file(path) == digest
        except OSError:
            ok = False
        if not ok:
            bad.append(rel)
    return bad


def evict(cache_root: Path, digests: Iterable[str]) -> None:
    """Drop cached copies of blobs (the next use fetches them again from the store, verified)."""
    for digest in digests:
        try:
            cache_path(cache_root, digest).unlink()
        except FileNotFoundError:
            pass


def discard(dest: Path) -> None:
    """Remove a folder: renamed aside first, so nobody sees it half removed."""
    trash = dest.parent / temp_name(f".{dest.name}.old.")
    try:
        os.rename(dest, trash)
    except FileNotFoundError:
        return
    shutil.rmtree(trash, ignore_errors=True)


def seal_of(wanted: Mapping[str, str]) -> str:
    """The seal of a folder holding exactly `wanted` ({relative path: digest}): a sha256, hex."""
    return hashlib.sha256(json.dumps(sorted(wanted.items())).encode()).hexdigest()


_seal_text = seal_of


def _write_seal(folder: Path, wanted: Mapping[str, str]) -> None:
    with open(folder / MARKER, "w") as f:
        f.write(_seal_text(wanted))
        f.flush()
        os.fsync(f.fileno())


def safe_relpath(rel: str) -> bool:
    """Whether `rel` is a relative posix path that stays inside the folder it is joined to."""
    return bool(rel) and not PurePosixPath(rel).is_absolute() and "\\" not in rel and all(
        part not in ("", ".", "..") for part in rel.split("/"))


def _check_relpath(rel: str) -> str:
    if not safe_relpath(rel):
        raise InvalidInput(f"not a safe relative path: {rel!r}", path=rel)
    return str(PurePosixPath(rel))


def _check_no_file_dir_clash(wanted: Mapping[str, object]) -> None:
    dirs = {str(parent) for rel in wanted for parent in PurePosixPath(rel).parents}
    clash = sorted(dirs & set(wanted))
    if clash:
        raise InvalidInput(f"{clash[0]!r} is both a file and a folder", path=clash[0])


def _completeness(wanted: Mapping[str, str], cache_root: Path, *, sizes: Mapping[str, int] | None,
                  sealed: bool, hashed: Collection[str]) -> Callable[[Path], bool]:
    def complete(dest: Path) -> bool:
        return _is_complete(dest, wanted, cache_root, sizes=sizes, sealed=sealed, hashed=hashed)

    return complete


def _is_complete(dest: Path, wanted: Mapping[str, str], cache_root: Path, *, sizes: Mapping[str, int] | None = None,
                 sealed: bool = False, hashed: Collection[str] = ()) -> bool:
    """dest holds exactly the wanted files (plain files, no links), each of the expected size.

    The expected size is `sizes[rel]`, else the size of its cached blob (when cached). A sealed
    folder must carry the marker for exactly these files; the files in `hashed` must match their
    digests.
    """
    if dest.is_symlink() or not dest.is_dir():
        return False
    try:
        if sealed:
            if (dest / MARKER).read_text() != _seal_text(wanted):
                return False
        present = {}
        for p in dest.rglob("*"):
            if p.is_symlink():
                return False
            if not p.is_dir():
                present[p.relative_to(dest).as_posix()] = p
        if sealed:
            present.pop(MARKER, None)
        if set(present) != set(wanted):
            return False
        for rel, digest in wanted.items():
            expected = sizes.get(rel) if sizes is not None else None
            if expected is None:
                try:
                    expected = cache_path(cache_root, digest).stat().st_size
                except FileNotFoundError:
                    pass
            if expected is not None and present[rel].stat().st_size != expected:
                return False
        return all(sha256_file(dest / rel) == wanted[rel] for rel in hashed if rel in wanted)
    except (OSError, UnicodeDecodeError):
        return False


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


def _move_into_place(build: Path, dest: Path, complete: Callable[[Path], bool], *, keep_build: bool = False) -> None:
    """Rename `build` to `dest`. When `dest` exists: kept if complete (another process finished the
    same folder first; `build` is dropped unless `keep_build`), else swapped out and removed."""
    try:
        os.rename(build, dest)
    except OSError as e:
        if e.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR):
            raise
        if complete(dest):
            if not keep_build:
                shutil.rmtree(build, ignore_errors=True)
            return
        # dest holds something else (a stale, hand-edited or planted folder): swap it out, then drop it.
        trash = dest.parent / temp_name(f".{dest.name}.old.")
        os.rename(dest, trash)
        try:
            os.rename(build, dest)
        except OSError as e2:
            raise StorageError(f"could not move a folder into place at {dest}: {e2}", path=str(dest)) from e2
        finally:
            shutil.rmtree(trash, ignore_errors=True)
    fsync_dir(dest.parent)
