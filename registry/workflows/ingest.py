"""Blob ingest: the one path by which files enter the artifact store.

Push, merge and `add_base --store-weights` all call `ingest`. It follows the gc protocol
(registry/release/gc.py): the blobs are marked as in use in a short transaction of their own
*before* the store is looked at, so a concurrent gc that already judged an identical old blob
unreferenced keeps it; then each file is streamed into the store, its digest verified.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from registry.catalog import commands as C
from registry.core import Core
from registry.storage.base import BlobInfo

Progress = Callable[[str, int, int], None]  # (stage, done, total)


def ingest(core: Core, files: Mapping[Path, tuple[str | None, int]], *, progress: Progress | None = None,
           stage: str = "upload") -> dict[Path, BlobInfo]:
    """Put `files` ({local path: (expected sha256 or None, size)}) into the store.

    Files whose digest is not known beforehand are hashed while they are stored and marked as in
    use right after (nothing can reference them before the caller's catalog write anyway).

    Returns:
        {local path: BlobInfo} in the order given
    Raises:
        IntegrityFailure: a file's bytes do not match its expected digest (nothing stored for it)
        DiskFull, StorageError: the store failed
    """
    known = {d: n for d, n in files.values() if d}
    if known:
        with core.db.write() as s:
            C.touch_blobs(s, known)
    out: dict[Path, BlobInfo] = {}
    late: dict[str, int] = {}
    for i, (path, (digest, _size)) in enumerate(files.items()):
        b = core.store.put_file(path, expected=digest)
        out[path] = b
        if digest is None:
            late[b.digest] = b.size
        if progress:
            progress(stage, i + 1, len(files))
    if late:
        with core.db.write() as s:
            C.touch_blobs(s, late)
    return out
