"""Local folders for catalog entries: an adapter version's files, a base model's weights.

Both are built from content-addressed blobs (each verified against its digest) into a cache
folder keyed by digest, so asking twice costs nothing and two processes never see half a folder.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from registry.catalog import queries as Q
from registry.core import Core
from registry.errors import BaseModelNotFound, IntegrityFailure
from registry.refs import parse_ref


def adapter_folder(core: Core, ref: str, *, warn: bool = True) -> Path:
    """A local folder with the version's files, for PeftModel.from_pretrained.

    A deprecated version still resolves, with a DeprecationWarning naming the reason (`warn`).
    """
    from registry.storage import materialize

    with core.db.read() as s:
        _a, row = Q.get_version(s, parse_ref(ref))
        files = {f.path: f.digest for f in row.files}
        sizes = {f.path: f.size for f in row.files}
        digest, deprecated, reason = row.content_digest, row.deprecated, row.deprecation_reason
    if deprecated and warn:
        warnings.warn(f"{ref} is deprecated" + (f": {reason}" if reason else ""), DeprecationWarning, stacklevel=3)
    dest = core.settings.cache_dir / "adapters" / digest
    # The folder's name is a public digest: trust only a folder this registry sealed, with the
    # catalog's sizes (merge also checks every byte before merging).
    return materialize(core.store, files, dest, cache_root=core.settings.cache_dir / "blobs", sizes=sizes,
                       sealed=True)


def loadable_folder(core: Core, ref: str, *, local_dir: Path | None = None) -> Path:
    """The version's files for `from_pretrained`: with its base registered and on this machine,
    adapter_config.json names the base's folder (storage/loadable.py), so
    `AutoPeftModelForCausalLM.from_pretrained(folder)` loads offline. Without one it is the
    stored files (`adapter_folder`). With `local_dir`, a copy the caller owns is made there.

    Raises:
        AlreadyExists: `local_dir` exists
    """
    from registry.storage.loadable import CONFIG, with_local_base

    with core.db.read() as s:
        _a, row = Q.get_version(s, parse_ref(ref))
        files = {f.path: f.digest for f in row.files}
        sizes = {f.path: f.size for f in row.files}
        base = row.base_model
        base_ref = f"{base.name}@{base.fingerprint[:16]}" if base is not None else None
    path = adapter_folder(core, ref)
    if base_ref is not None and CONFIG in files:
        try:
            base_dir = base_folder(core, base_ref)
        except BaseModelNotFound:
            base_dir = None  # not on this machine: the stored config, which names where it was trained
        if base_dir is not None:
            path = with_local_base(core.store, files, core.settings.cache_dir / "loadable",
                                   cache_root=core.settings.cache_dir / "blobs", sizes=sizes,
                                   base_dir=base_dir) or path
    return export(path, local_dir) if local_dir is not None else path


def export(folder: Path, local_dir: Path) -> Path:
    """A copy of a resolved (sealed) folder at `local_dir`, which the caller owns (never links into the cache)."""
    from registry.storage.cache import MARKER, export_files

    files = {p.relative_to(folder).as_posix(): p for p in sorted(Path(folder).rglob("*")) if p.is_file()}
    files.pop(MARKER, None)
    return export_files(files, Path(local_dir))


def base_folder(core: Core, ref: str) -> Path:
    """A local folder holding the base model: its registered location, or the stored copy.

    Raises:
        BaseModelNotFound: unknown, or neither at its location nor stored
    """
    with core.db.read() as s:
        row = Q.get_base(s, ref)
        files = dict(row.files)
        location, stored, fpr = row.location, row.weights_stored, row.fingerprint
    p = Path(location)
    changed = _changed(p, files) if (p / "config.json").is_file() else None
    if changed is None:
        pass  # not there any more
    elif not changed:
        return p
    elif not stored:
        raise IntegrityFailure(f"base model {ref!r} at {location} changed since it was registered ({changed[0]})",
                               hint="restore the folder, or register it again (a new fingerprint) with "
                                    "adapter-registry base add")
    if stored:  # the stored copy: the bytes the fingerprint was taken of
        from registry.storage import materialize

        dest = core.settings.cache_dir / "bases" / fpr
        sizes = {k: v["size"] for k, v in files.items() if isinstance(v.get("size"), int)}
        return materialize(core.store, {k: v["digest"] for k, v in files.items()}, dest,
                           cache_root=core.settings.cache_dir / "blobs", sizes=sizes, sealed=True)
    raise BaseModelNotFound(f"base model {ref!r} is not at {location} any more and its weights are not stored",
                            hint="register it again with --store-weights, or restore the folder")


def _changed(folder: Path, files: dict[str, Any]) -> list[str]:
    """What of the registered files is not at `folder` as it was registered: missing, or another size
    (a stat per file; merge, verify and load read the registered folder, and a replaced shard would
    otherwise be merged under the old fingerprint)."""
    out = []
    for rel, info in sorted(files.items()):
        size = info.get("size") if isinstance(info, dict) else None
        try:
            now = (folder / rel).stat().st_size
        except OSError:
            out.append(f"{rel} is missing")
            continue
        if isinstance(size, int) and now != size:
            out.append(f"{rel} is {now:,} bytes, was {size:,}")
    return out

