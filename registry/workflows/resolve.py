"""Local folders for catalog entries: an adapter version's files, a base model's weights.

Both are built from content-addressed blobs (each verified against its digest) into a cache
folder keyed by digest, so asking twice costs nothing and two processes never see half a folder.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from registry.catalog import queries as Q
from registry.core import Core
from registry.errors import BaseModelNotFound
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
    if (p / "config.json").is_file():
        return p
    if stored:
        from registry.storage import materialize

        dest = core.settings.cache_dir / "bases" / fpr
        sizes = {k: v["size"] for k, v in files.items() if isinstance(v.get("size"), int)}
        return materialize(core.store, {k: v["digest"] for k, v in files.items()}, dest,
                           cache_root=core.settings.cache_dir / "blobs", sizes=sizes, sealed=True)
    raise BaseModelNotFound(f"base model {ref!r} is not at {location} any more and its weights are not stored",
                            hint="register it again with --store-weights, or restore the folder")
