"""dir:///path: the folder appears complete or not at all (built beside it, then renamed)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from registry.errors import AlreadyExists, InvalidInput, RegistryError, translate_os_error
from registry.publish.base import MANIFEST, Progress, Published, plan, sha256_file
from registry.storage.cache import safe_relpath
from registry.storage.fsutil import clone_or_copy, fsync_dir, temp_name


class DirectoryPublisher:
    kind = "dir"

    def __init__(self, dest: Path):
        self.dest = Path(dest)

    @classmethod
    def from_uri(cls, uri: str, *, settings=None) -> DirectoryPublisher:
        parts = urlsplit(uri)
        path = unquote(parts.netloc + parts.path)
        if not path.startswith("/"):
            raise InvalidInput(f"{uri}: give an absolute path (dir:///abs/path)")
        return cls(Path(path))

    def publish(self, folder: Path, *, progress: Progress | None = None) -> Published:
        """Copy `folder` to the destination (each file fsynced). Publishing the same manifest again is a no-op.

        Raises:
            AlreadyExists: the destination holds something else
            DiskFull, StorageError: writing failed (nothing is left at the destination)
        """
        files, digest = plan(folder)

        def fill(tmp: Path) -> bool:
            for i, rel in enumerate(files):
                target = tmp / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                clone_or_copy(Path(folder) / rel, target)  # a reflink or one copy, never a link into the cache
                if progress:
                    progress("copy", i + 1, len(files))
            return True

        res = self._publish_with(digest, len(files), fill)
        assert res is not None  # fill never gives up
        return res

    def publish_stored(self, files: dict[str, tuple[str, int]], manifest_digest: str, *, store: Any,
                       progress: Progress | None = None) -> Published | None:
        """Copy an artifact's stored blobs ({relative path: (sha256, size)}) from a local store, each
        hashed while it is copied (the hash on one core, the in-kernel copy or reflink on the other),
        and rename the folder into place only when every file matched its digest.

        Returns None (nothing left behind) where `store` is not a local folder holding every blob at
        its size, or a blob does not match its digest: the caller then publishes a verified folder.
        """
        where = getattr(store, "path", None)
        if where is None or MANIFEST not in files or not all(safe_relpath(rel) for rel in files):
            return None
        sources = {rel: Path(where(digest)) for rel, (digest, _size) in files.items()}
        try:
            if any(p.is_symlink() or p.stat().st_size != files[rel][1] for rel, p in sources.items()):
                return None
        except OSError:
            return None
        order = sorted(files)

        def fill(tmp: Path) -> bool:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(1, thread_name_prefix="publish-copy") as pool:
                for i, rel in enumerate(order):
                    target = tmp / rel
                    target.parent.mkdir(parents=True, exist_ok=True)
                    copying = pool.submit(clone_or_copy, sources[rel], target)
                    try:
                        same = sha256_file(sources[rel]) == files[rel][0]
                    finally:
                        copying.result()
                    if not same:
                        return False  # a stored blob changed in place: never shipped from here
                    if progress:
                        progress("copy", i + 1, len(order))
            return True

        return self._publish_with(manifest_digest, len(order), fill)

    def _publish_with(self, digest: str, count: int, fill: Callable[[Path], bool]) -> Published | None:
        """Build the destination in a hidden folder beside it with `fill(tmp)` and rename it into place;
        None (and nothing left) when `fill` returns False. The same manifest already there: a no-op."""
        uri = f"dir://{self.dest}"
        if self._holds(digest):
            return Published(uri, None, digest, count)
        if self.dest.exists():
            raise AlreadyExists(f"{self.dest} exists and holds something else", path=str(self.dest),
                                hint="publish to a new path, or remove the old folder first")
        try:
            self.dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.dest.parent / temp_name(f".{self.dest.name}.")
            tmp.mkdir()
        except OSError as e:
            raise translate_os_error(e, path=str(self.dest)) from e
        try:
            if not fill(tmp):
                shutil.rmtree(tmp, ignore_errors=True)
                return None
            fsync_dir(tmp)
            try:
                os.rename(tmp, self.dest)  # atomic; fails if dest appeared meanwhile and is not empty
            except OSError:
                if self._holds(digest):  # another attempt of this same publication won the race
                    shutil.rmtree(tmp, ignore_errors=True)
                    return Published(uri, None, digest, count)
                raise
            fsync_dir(self.dest.parent)
        except BaseException as e:
            shutil.rmtree(tmp, ignore_errors=True)
            if isinstance(e, OSError) and not isinstance(e, RegistryError):
                raise translate_os_error(e, path=str(self.dest)) from e
            raise
        return Published(uri, None, digest, count)

    def _holds(self, digest: str) -> bool:
        try:
            return sha256_file(self.dest / MANIFEST) == digest
        except OSError:
            return False
