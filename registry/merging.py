"""Registry.merge: catalog lookup, cache, the merge engine, blobs and the merged-artifact record.

Idempotent by construction: the artifact is keyed by what decides its bits, its files are
content-addressed blobs, and the catalog row is inserted with ON CONFLICT DO NOTHING, so two
workers merging the same thing at once (or a rescued job running twice) end with one record.
"""

from __future__ import annotations

import hashlib
import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from sqlalchemy import select

from registry import types as T
from registry.catalog import commands as C
from registry.catalog import convert
from registry.catalog import models as M
from registry.catalog import queries as Q
from registry.errors import AlreadyExists, BaseModelNotFound, InvalidInput
from registry.refs import parse_ref

if TYPE_CHECKING:
    from registry.app import Registry


def cache_key(base_fingerprint: str, adapter_digest: str, dtype: str, engine_version: str, device: str) -> str:
    kind = "cuda" if device.startswith("cuda") else "cpu"
    return hashlib.sha256("\\0".join((base_fingerprint, adapter_digest, dtype, engine_version, kind)).encode()).hexdigest()


def engine_version(engine: str) -> str:
    from importlib import metadata

    from registry.merge import ENGINES, STREAMING_VERSION

    if engine not in ENGINES:
        raise InvalidInput(f"engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    return f"peft/{metadata.version('peft')}" if engine == "peft" else STREAMING_VERSION


def normalize_dtype(dtype: str | None, base_dtype: str | None) -> str:
    from registry.merge import DTYPES

    if dtype is None:
        return base_dtype if base_dtype in ("float32", "float16", "bfloat16") else "float32"
    key = str(dtype).removeprefix("torch.")
    if key not in DTYPES:
        raise InvalidInput(f"dtype must be one of bf16, fp16, fp32 (or bfloat16, float16, float32), not {dtype!r}")
    return DTYPES[key]


def find_merged(reg: "Registry", ref: str, *, dtype: str | None = None, engine: str = "auto",
                device: str = "cpu") -> tuple[str, M.MergedArtifact | None]:
    """(cache key, existing artifact row or None) for a merge request."""
    r = parse_ref(ref)
    with reg.db.read() as s:
        _a, row = Q.get_version(s, r)
        base = row.base_model
        if base is None:
            raise BaseModelNotFound(f"{r.name}@{row.version} has no base model recorded",
                                    hint="push it again with --base NAME")
        key = cache_key(base.fingerprint, row.content_digest, normalize_dtype(dtype, base.dtype),
                        engine_version(engine), device)
        return key, s.scalar(select(M.MergedArtifact).where(M.MergedArtifact.cache_key == key))


def merge_version(reg: "Registry", ref: str, *, dtype: str | None, engine: str, device: str, validate: bool,
                  out: Path | None, max_shard_size: str | int,
                  progress: Callable[[int, int, str], None] | None) -> T.MergedArtifact:
    from registry import merge as engine_mod

    if out is not None and out.exists():
        raise AlreadyExists(f"{out} already exists", path=str(out))
    r = parse_ref(ref)
    key, existing = find_merged(reg, ref, dtype=dtype, engine=engine, device=device)
    if existing is not None and not (validate and "logits" not in (existing.validation or {})):
        return _materialize(reg, existing.id, out, created=False)
    with reg.db.read() as s:
        _a, row = Q.get_version(s, r)
        base = row.base_model
        vref, vid, digest = f"{r.name}@{row.version}", row.id, row.content_digest
        base_ref = f"{base.name}@{base.fingerprint[:16]}"
        base_info = {"name": base.name, "fingerprint": base.fingerprint, "revision": base.revision}
        out_dtype = normalize_dtype(dtype, base.dtype)
    adapter_dir = reg.resolve(vref)
    base_dir = reg.base_folder(base_ref)
    sweep_work_dirs(reg.settings.cache_dir / "merged")
    work = reg.settings.cache_dir / "merged" / f".work-{uuid.uuid4().hex[:12]}"
    try:
        res = engine_mod.merge(
            base_dir, adapter_dir, work / "model", engine=engine, dtype=out_dtype, device=device,
            max_shard_size=max_shard_size, validate=validate, progress=progress,
            card={"adapter": {"name": r.name, "version": int(vref.rsplit("@", 1)[1]), "digest": digest},
                  "base": base_info, "tags": ["adapter-registry"]})
        from registry.release.gc import touch_blobs

        with reg.db.write() as s:  # in use before the store is looked at (see registry/release/gc.py)
            touch_blobs(s, {sha: (res.out_dir / rel).stat().st_size for rel, sha in res.files.items()})
        files = {}
        for rel, sha in sorted(res.files.items()):
            p = res.out_dir / rel
            b = reg.store.put_file(p, expected=sha)
            files[rel] = {"digest": b.digest, "size": b.size}
        validation = dict(res.validation or {})
        if res.fallback_reason:
            validation["fallback_reason"] = res.fallback_reason
        validation["seconds"] = round(res.seconds, 3)
        with reg.db.write() as s:
            C.add_blobs(s, {f["digest"]: f["size"] for f in files.values()})
            C.insert_ignore(s, M.MergedArtifact, {
                "cache_key": key, "version_id": vid, "base_model_id": s.get(M.AdapterVersion, vid).base_model_id,
                "dtype": res.dtype, "engine": res.engine, "engine_version": res.engine_version,
                "device": res.device, "manifest_digest": res.files["manifest.json"], "files": files,
                "size_bytes": res.size_bytes, "validation": validation, "created_by": reg.actor,
                "created_at": M.utcnow()}, ["cache_key"])
            mrow = s.scalar(select(M.MergedArtifact).where(M.MergedArtifact.cache_key == key))
            if validate and "logits" not in (mrow.validation or {}):
                mrow.validation = validation
            C.record(s, reg.actor, "merge.create", vref, {"merged_id": mrow.id, "dtype": res.dtype,
                                                          "engine": res.engine, "manifest": mrow.manifest_digest})
            mid = mrow.id
        dest = merged_dir(reg, key)
        if not dest.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                res.out_dir.rename(dest)
            except OSError:
                pass  # another process put the same bytes there first
        return _materialize(reg, mid, out, created=existing is None)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def sweep_work_dirs(root: Path, *, older_than_s: float = 6 * 3600) -> int:
    """Remove hidden work folders that a killed merge left behind (never visible as a result)."""
    import time

    removed = 0
    if not root.is_dir():
        return 0
    for d in root.glob(".work-*"):
        try:
            if time.time() - d.stat().st_mtime > older_than_s:
                shutil.rmtree(d, ignore_errors=True)
                removed += 1
        except FileNotFoundError:
            pass
    return removed


def merged_dir(reg: "Registry", key: str) -> Path:
    return reg.settings.cache_dir / "merged" / key


def _materialize(reg: "Registry", merged_id: int, out: Path | None, *, created: bool) -> T.MergedArtifact:
    """The artifact with a local folder: the merged cache (rebuilt from blobs if missing) or `out`."""
    from registry.storage import materialize

    with reg.db.read() as s:
        m = s.get(M.MergedArtifact, merged_id)
        v = s.get(M.AdapterVersion, m.version_id)
        name = s.get(M.Adapter, v.adapter_id).name
        base = s.get(M.BaseModelRow, m.base_model_id)
        files = {k: f["digest"] for k, f in m.files.items()}
        art = convert.merged(m, f"{name}@{v.version}", base, created=created)
    target = out or merged_dir(reg, m.cache_key)
    path = materialize(reg.store, files, target, cache_root=reg.settings.cache_dir / "blobs")
    import dataclasses

    return dataclasses.replace(art, path=path)
