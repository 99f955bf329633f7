"""The publisher contract and how a publisher is found from a target URI.

A publisher ships a complete merged-model folder (its manifest.json lists every file) to a
target so that a reader never sees a half-published checkpoint as complete: a folder appears by
rename, an S3 prefix gets its manifest last, a Hub repo gets one commit. Publishers are found by
URI scheme through the entry-point group `adapter_registry.publishers`; the built-in table below
is the fallback for a source checkout, so built-in and third-party publishers are found alike.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from registry.errors import InvalidInput
from registry.storage.cache import MARKER as SEAL
from registry.storage.digest import sha256_file

if TYPE_CHECKING:  # pragma: no cover
    from registry.settings import Settings

ENTRY_POINT_GROUP = "adapter_registry.publishers"
MANIFEST = "manifest.json"

# scheme -> "module:Class"; what pyproject.toml's entry points would declare.
BUILTIN_PUBLISHERS = {
    "dir": "registry.publish.directory:DirectoryPublisher",
    "file": "registry.publish.directory:DirectoryPublisher",
    "s3": "registry.publish.s3:S3Publisher",
    "hf": "registry.publish.hf_hub:HubPublisher",
}

Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass(frozen=True)
class Published:
    """Where a folder went: `uri`, the target's `revision` (a Hub commit) and the manifest's sha256."""

    uri: str
    revision: str | None
    manifest_digest: str
    files: int


@runtime_checkable
class Publisher(Protocol):
    kind: str  # "dir" | "s3" | "hf" | a third party's name: recorded with each publication

    @classmethod
    def from_uri(cls, uri: str, *, settings: Settings | None = None) -> Publisher: ...

    def publish(self, folder: Path, *, progress: Progress | None = None) -> Published: ...


def parse_target(uri: str) -> tuple[str, str]:
    """(scheme, rest) of a target URI; raises InvalidInput for an empty or scheme-less one."""
    if not uri or "://" not in uri:
        raise InvalidInput(f"not a publish target: {uri!r}",
                           hint="use dir:///path, s3://bucket/prefix or hf://org/repo[@revision]")
    scheme, _, rest = uri.partition("://")
    publisher_class(scheme)
    if not rest.strip("/"):
        raise InvalidInput(f"publish target {uri!r} names no place")
    return scheme, rest


def publisher_class(scheme: str) -> type:
    """The publisher for a URI scheme: an installed entry point first, then the built-ins."""
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == scheme:
            return ep.load()
    target = BUILTIN_PUBLISHERS.get(scheme)
    if target is None:
        known = sorted({*BUILTIN_PUBLISHERS, *(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))})
        raise InvalidInput(f"no publisher for {scheme}:// (known: {', '.join(known)})", scheme=scheme,
                           hint=f"install a package that registers it under the entry-point group {ENTRY_POINT_GROUP}")
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def open_publisher(uri: str, *, settings: Settings | None = None) -> Publisher:
    scheme, _ = parse_target(uri)
    cls: type[Publisher] = publisher_class(scheme)
    return cls.from_uri(uri, settings=settings)


def plan(folder: Path) -> tuple[list[str], str]:
    """The folder's files in upload order (manifest.json last) and the manifest's sha256."""
    folder = Path(folder)
    if not (folder / MANIFEST).is_file():
        raise InvalidInput(f"{folder} has no {MANIFEST}: only complete merged folders are published",
                           path=str(folder))
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    files = [f for f in files if f not in (MANIFEST, SEAL)] + [MANIFEST]  # the cache's seal is not the model's
    return files, sha256_file(folder / MANIFEST)
