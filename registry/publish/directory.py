"""dir:///path: the folder appears complete or not at all (built beside it, then renamed)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import unquote, urlsplit

from registry.errors import AlreadyExists, InvalidInput, RegistryError, translate_os_error
from registry.publish.base import MANIFEST, Progress, Published, plan, sha256_file
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
        uri = f"dir://{self.dest}"
        if self._holds(digest):
            return Published(uri, None, digest, len(files))
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
            for i, rel in enumerate(files):
                target = tmp / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                clone_or_copy(Path(folder) / rel, target)  # a reflink or one copy, never a link into the cache
                if progress:
                    progress("copy", i + 1, len(files))
            fsync_dir(tmp)
            try:
                os.rename(tmp, self.dest)  # atomic; fails if dest appeared meanwhile and is not empty
            except OSError:
                if self._holds(digest):  # another attempt of this same publication won the race
                    shutil.rmtree(tmp, ignore_errors=True)
                    return Published(uri, None, digest, len(files))
                raise
            fsync_dir(self.dest.parent)
        except BaseException as e:
            shutil.rmtree(tmp, ignore_errors=True)
            if isinstance(e, OSError) and not isinstance(e, RegistryError):
                raise translate_os_error(e, path=str(self.dest)) from e
            raise
        return Published(uri, None, digest, len(files))

    def _holds(self, digest: str) -> bool:
        try:
            return sha256_file(self.dest / MANIFEST) == digest
        except OSError:
            return False
