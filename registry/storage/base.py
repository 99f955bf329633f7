"""The blob store contract and how a store is found from a URL.

A blob is an immutable byte string named by its sha256. Every backend (local folder, S3, or a
third-party one) implements `BlobStore` and is found by URL scheme through the entry-point group
`adapter_registry.blob_stores`; the built-in table below is the fallback for a source checkout
that was never installed, so built-in and third-party backends are found the same way.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable
from urllib.parse import urlsplit

from registry.errors import InvalidInput

ENTRY_POINT_GROUP = "adapter_registry.blob_stores"

# scheme -> "module:Class"; mirrors the entry points declared in pyproject.toml.
BUILTIN_STORES = {
    "file": "registry.storage.local:LocalBlobStore",
    "s3": "registry.storage.s3:S3BlobStore",
}


@dataclass(frozen=True)
class BlobInfo:
    """What a put stored.

    Attributes:
        digest: lowercase sha256 hex, no prefix
        size: bytes
        created: False when the store already held the blob (nothing was written)
    """

    digest: str
    size: int
    created: bool


@runtime_checkable
class BlobStore(Protocol):
    """Content-addressed, immutable blobs named by sha256.

    Invariant every backend keeps: a blob is visible under a digest only if its bytes hash to that
    digest; writes go to a temporary name first and are checked before they become visible.
    `progress` callbacks receive the number of bytes just processed (an increment, like tqdm.update).
    """

    url: str

    @classmethod
    def from_url(cls, url: str, *, s3_endpoint: str | None = None) -> BlobStore: ...

    def put_file(
        self, path: Path, *, expected: str | None = None, progress: Callable[[int], None] | None = None
    ) -> BlobInfo: ...

    def put_stream(
        self, stream: BinaryIO, *, expected: str | None = None, progress: Callable[[int], None] | None = None
    ) -> BlobInfo: ...

    def exists(self, digest: str) -> bool: ...

    def size(self, digest: str) -> int: ...

    def fetch(self, digest: str, dest: Path, *, progress: Callable[[int], None] | None = None) -> None: ...

    def open(self, digest: str, *, start: int = 0, end: int | None = None) -> AbstractContextManager[BinaryIO]: ...

    def delete(self, digest: str) -> None: ...

    def iter_digests(self) -> Iterator[str]: ...

    def verify(self, digest: str) -> bool: ...


def store_class(scheme: str) -> type[BlobStore]:
    """The backend class for a URL scheme: an installed entry point first, then the built-ins.

    Raises:
        InvalidInput: no backend is registered for the scheme
    """
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == scheme:
            loaded: type[BlobStore] = ep.load()
            return loaded
    target = BUILTIN_STORES.get(scheme)
    if target is None:
        known = sorted({*BUILTIN_STORES, *(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))})
        raise InvalidInput(
            f"no blob store for scheme {scheme!r} (known: {', '.join(known)})",
            hint=f"install a package that registers it under the entry-point group {ENTRY_POINT_GROUP}",
            scheme=scheme,
        )
    module, _, name = target.partition(":")
    builtin: type[BlobStore] = getattr(importlib.import_module(module), name)
    return builtin


def open_store(url: str, *, s3_endpoint: str | None = None) -> BlobStore:
    """Build the blob store a URL names.

    Args:
        url: "/path" or "file:///path" (local folder), "s3://bucket/prefix" (S3), or
            "<scheme>://..." for a backend registered under the entry-point group
        s3_endpoint: endpoint URL for S3-compatible services (MinIO, moto); backends that do not
            talk to S3 ignore it
    Raises:
        InvalidInput: the URL is empty or its scheme has no backend
    """
    if not url or not url.strip():
        raise InvalidInput("empty blob store URL")
    scheme = urlsplit(url).scheme if "://" in url else "file"
    cls = store_class(scheme)
    return cls.from_url(url, s3_endpoint=s3_endpoint)
