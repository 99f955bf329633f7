"""Merge a version into its base: catalog lookup, cache, the merge engine, blobs, the record.

Idempotent by construction: the artifact is keyed by what decides its bits, its files are
content-addressed blobs, and the catalog row is inserted with ON CONFLICT DO NOTHING, so two
workers merging the same thing at once (or a rescued job running twice) end with one record.
A merge with `validate` whose logits comparison passes is recorded as a verification of the
version in the merge's dtype (registry/gates.py says what counts as verified).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry import dtypes
from registry import types as T
from registry.catalog import commands as C
from registry.catalog import convert
from registry.catalog import models as M
from registry.catalog import queries as Q
from registry.catalog.rows import row as need
from registry.core import Core
from registry.errors import AlreadyExists, BaseModelNotFound, IntegrityFailure, InvalidInput
from registry.refs import parse_ref
from registry.workflows.ingest import ingest
from registry.workflows.resolve import adapter_folder, base_folder

if TYPE_CHECKING:
    from registry.storage.s3_staged import StagedUploads

MergeProgress = Callable[[int, int, str], None]  # (done, total, tensor name)
MANIFEST = "manifest.json"


def cache_device(device: str) -> str:
    """The part of a device that decides merged bits (and so the cache key): "cpu" or "cuda"."""
    return "cuda" if device.startswith("cuda") else "cpu"


def cache_key(base_fingerprint: str, adapter_digest: str, dtype: str, engine_version: str, device: str) -> str:
    parts = (base_fingerprint, adapter_digest, dtype, engine_version, cache_device(device))
    return hashlib.sha256("\\0".join(parts).encode()).hexdigest()


def engine_version(engine: str) -> str:
    from importlib import metadata

    from registry.merge import ENGINES, STREAMING_VERSION

    if engine not in ENGINES:
        raise InvalidInput(f"engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    return f"peft/{metadata.version('peft')}" if engine == "peft" else STREAMING_VERSION


def find_cached(core: Core, ref: str, *, dtype: str | None = None, engine: str = "auto", device: str = "cpu",
                validated: bool = False) -> M.MergedArtifact | None:
    """The merged artifact a merge request would return without merging, or None.

    With `validated`, only an artifact whose logits validation ran counts.
    """
    _job, _key, row = _lookup(core, ref, dtype=dtype, engine=engine, device=device)
    if row is not None and validated and "logits" not in (row.validation or {}):
        return None
    return row


def _lookup(core: Core, ref: str, *, dtype: str | None, engine: str, device: str
            ) -> tuple[_Job, str, M.MergedArtifact | None]:
    """What the merge needs, its cache key and the artifact under that key, in one read."""
    with core.db.read() as s:
        job = _Job.read(s, ref, dtype)
        key = cache_key(job.base_info["fingerprint"], job.digest, job.dtype, engine_version(engine), device)
        return job, key, s.scalar(select(M.MergedArtifact).where(M.MergedArtifact.cache_key == key))


def merge(core: Core, ref: str, *, dtype: str | None, engine: str, device: str, validate: bool,
          out: Path | None, max_shard_size: str | int, progress: MergeProgress | None,
          folder: bool = True) -> T.MergedArtifact:
    """Merge (or find cached) and return the artifact with a local folder (`out` when given).

    With `folder=False` and no `out`, no cache folder is built (a publish reads the stored blobs
    through `publish_folder`) and the artifact's `path` is None unless one already exists.
    """
    if out is not None and out.exists():
        raise AlreadyExists(f"{out} already exists", path=str(out))
    job, key, existing = _lookup(core, ref, dtype=dtype, engine=engine, device=device)
    if existing is not None and not (validate and "logits" not in (existing.validation or {})):
        return _with_folder(core, existing.id, out, created=False, folder=folder)
    merged_root = core.settings.cache_dir / "merged"
    sweep_work_dirs(merged_root)
    work = merged_root / f".work-{uuid.uuid4().hex[:12]}"
    staged = _staged_uploads(core)  # an S3 store: each shard goes up while the next is merged
    tee = None
    try:
        # `--out`: the engine writes each shard there too, as it writes the stored copy (one more
        # write of the bytes, made while merging, no copy or hash after it); renamed to `out` at the end.
        tee = _out_build(core, out)
        res = _run_engine(core, job, work, engine=engine, device=device, validate=validate,
                          max_shard_size=max_shard_size, progress=progress,
                          on_shard=staged.add if staged is not None else None, tee=tee)
        sizes = _land(core, res.out_dir, res.files, staged)
        files = {rel: {"digest": sha, "size": sizes[rel]} for rel, sha in sorted(res.files.items())}
        mid = _record(core, job, key, res, files, validate=validate)
        return _with_folder(core, mid, out, created=existing is None, built=res.out_dir, folder=folder, tee=tee,
                            made=res.files)
    except BaseException:
        if staged is not None:
            staged.abort()  # nothing of an interrupted merge becomes visible in the bucket
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if tee is not None:
            shutil.rmtree(tee, ignore_errors=True)  # gone already when it became `out`


def _keep_recorded(tee: Path, made: dict[str, str], recorded: dict[str, str]) -> None:
    """Remove from `tee` every file whose bytes (`made`: this run's digests) are not the recorded
    artifact's: the row kept under this cache key may be another run's (a concurrent worker, an
    earlier merge merged elsewhere, a `--validate` run over an unvalidated one), and `out` must hold
    the recorded files. export_files then copies those from the store."""
    for rel, digest in made.items():
        if recorded.get(rel) != digest:
            try:
                os.unlink(tee / rel)
            except FileNotFoundError:
                pass


def _out_build(core: Core, out: Path | None) -> Path | None:
    """The hidden folder beside `out` that the engine also writes each shard into (cache.build_beside),
    or None: without `out`, or where `out` can be a reflink of the stored blobs (a clone after the
    merge costs nothing, a second copy during it costs a full write)."""
    if out is None:
        return None
    from registry.storage import cache

    build = cache.build_beside(out)
    if _clones_from_store(core, build):
        shutil.rmtree(build, ignore_errors=True)
        return None
    return build


def _clones_from_store(core: Core, folder: Path) -> bool:
    """Whether a file of the local store can be reflinked into `folder` (the same reflink-capable
    file system: XFS, btrfs): tried on a small probe file, removed afterwards."""
    from registry.storage.fsutil import reflinks

    where = getattr(core.store, "tmp_dir", None)
    return where is not None and reflinks(Path(where), folder)


def _staged_uploads(core: Core) -> StagedUploads | None:
    if not core.store.url.startswith("s3://"):  # boto3 is imported only for an S3 store
        return None
    from registry.storage.s3_staged import staged_uploads

    return staged_uploads(core.store)


def _land(core: Core, folder: Path, digests: dict[str, str], staged: StagedUploads | None = None) -> dict[str, int]:
    """Put the engine's files into the store, written once: {relative path: size}.

    The engine hashed every file while writing it, so a local store on the same file system
    adopts each file as it is (a hard link into the content-addressed layout, read-only), and an
    S3 store (`staged`) has had each weight shard uploading since the engine finished it: the
    other files join those uploads and all complete together, keyed by the engine's digests. The
    rest (another file system, a store with neither) goes through `ingest`, which copies and verifies.
    The gc protocol is ingest's: the blobs are marked in use before anything becomes visible
    (a staged upload is invisible until `commit`), and before the store is looked at.
    """
    sizes = {rel: (folder / rel).stat().st_size for rel in digests}
    with core.db.write() as s:
        C.touch_blobs(s, {sha: sizes[rel] for rel, sha in digests.items()})
    if staged is not None:
        for rel, sha in sorted(digests.items()):
            staged.add(folder / rel, sha, sizes[rel], skip_present=True)  # a shard added already is skipped
        staged.commit()
        return sizes
    adopt = getattr(core.store, "adopt", None)
    rest = {}
    for rel, sha in sorted(digests.items()):
        if adopt is None or adopt(folder / rel, sha) is None:
            rest[folder / rel] = (sha, sizes[rel])
    if rest:
        ingest(core, rest, stage="store")
    return sizes


@dataclasses.dataclass(frozen=True)
class _Job:
    """What one merge needs from the catalog."""

    ref: str
    name: str
    version: int
    version_id: int
    digest: str
    base_ref: str
    base_info: dict[str, Any]
    dtype: str
    files: dict[str, str] = dataclasses.field(default_factory=dict)  # the version's files: relpath -> digest
    card: dict[str, Any] = dataclasses.field(default_factory=dict)  # what the model card says (merge/card.py)

    @classmethod
    def read(cls, s: Session, ref: str, dtype: str | None) -> _Job:
        r = parse_ref(ref)
        _a, row = Q.get_version(s, r)
        base = row.base_model
        if base is None:
            raise BaseModelNotFound(f"{r.name}@{row.version} has no base model recorded",
                                    hint="record one with: adapter-registry version set-base REF BASE")
        vref = f"{r.name}@{row.version}"
        info = {"name": base.name, "fingerprint": base.fingerprint, "revision": base.revision}
        evals = s.scalars(select(M.EvalResult).where(M.EvalResult.version_id == row.id).order_by(M.EvalResult.id))
        card = {"adapter": {"name": r.name, "version": row.version, "digest": row.content_digest,
                            "peft_type": row.peft_type},
                "base": {**info, "hub_id": base.hub_id, "card": dict(base.card or {})},
                "tags": ["adapter-registry"],
                "evals": [convert.eval_result(e, vref).to_dict() for e in evals]}
        return cls(vref, r.name, row.version, row.id, row.content_digest, f"{base.name}@{base.fingerprint[:16]}",
                   info, dtypes.or_default(dtype, base.dtype), {f.path: f.digest for f in row.files}, card)


def _run_engine(core: Core, job: _Job, work: Path, *, engine: str, device: str, validate: bool,
                max_shard_size: str | int, progress: MergeProgress | None,
                on_shard: Callable[[Path, str, int], None] | None = None, tee: Path | None = None) -> Any:
    from registry import merge as engines

    return engines.merge(
        base_folder(core, job.base_ref), _verified_adapter(core, job), work / "model", engine=engine,
        dtype=job.dtype, device=device, max_shard_size=max_shard_size, validate=validate, progress=progress,
        on_shard=on_shard, tee=tee, card=job.card)


def _verified_adapter(core: Core, job: _Job) -> Path:
    """The version's files as a folder, every byte checked: its cache path is computable from the
    public content digest, so what is there is merged only when it is the version's own."""
    from registry.storage import cache

    folder = adapter_folder(core, job.ref)
    bad = cache.mismatched(folder, job.files)
    if bad:
        cache.evict(core.settings.cache_dir / "blobs", [job.files[rel] for rel in bad])
        cache.discard(folder)
        folder = adapter_folder(core, job.ref, warn=False)
        bad = cache.mismatched(folder, job.files)
    if bad:
        raise IntegrityFailure(f"{job.ref}: {bad[0]} does not match its recorded digest", ref=job.ref, file=bad[0])
    return folder


def _record(core: Core, job: _Job, key: str, res: Any, files: dict[str, dict[str, Any]], *, validate: bool) -> int:
    """The merged-artifact row (one per cache key), its audit entry, and the validation as a verification."""
    validation = dict(res.validation or {})
    if res.fallback_reason:
        validation["fallback_reason"] = res.fallback_reason
    validation["seconds"] = round(res.seconds, 3)
    with core.db.write() as s:
        base_id = need(s, M.AdapterVersion, job.version_id).base_model_id
        C.insert_ignore(s, M.MergedArtifact, {
            "cache_key": key, "version_id": job.version_id, "base_model_id": base_id,
            "dtype": res.dtype, "engine": res.engine, "engine_version": res.engine_version,
            "device": res.device, "manifest_digest": res.files[MANIFEST], "files": files,
            "size_bytes": res.size_bytes, "validation": validation, "created_by": core.actor,
            "created_at": M.utcnow()}, ["cache_key"])
        mrow = s.scalars(select(M.MergedArtifact).where(M.MergedArtifact.cache_key == key)).one()
        if validate and "logits" not in (mrow.validation or {}):
            mrow.validation = validation
        logits = validation.get("logits")
        if validate and logits is not None:
            from registry.verify import device_kind  # the kind a verify job records ("cuda/<GPU name>")
            from registry.versions import library_versions

            s.add(M.Verification(version_id=job.version_id, base_model_id=base_id, device_kind=device_kind(res.device),
                                 dtype=res.dtype, versions=library_versions(res.device), passed=bool(logits["passed"]),
                                 figures={"source": "merge-validation", "merged_id": mrow.id, "logits": logits},
                                 duration_s=res.seconds))
            from registry.workflows.verify import verified_event

            verified_event(s, job.version_id, passed=bool(logits["passed"]), engine="peft", engine_version=None,
                           base_id=base_id, dtype=res.dtype)
        C.record(s, core.actor, "merge.create", job.ref, {"merged_id": mrow.id, "dtype": res.dtype,
                                                          "engine": res.engine, "manifest": mrow.manifest_digest})
        return mrow.id


def sweep_work_dirs(root: Path, *, older_than_s: float = 6 * 3600) -> int:
    """Remove hidden work folders that a killed merge left behind (never visible as a result)."""
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


def merged_dir(core: Core, key: str) -> Path:
    return core.settings.cache_dir / "merged" / key


def _with_folder(core: Core, merged_id: int, out: Path | None, *, created: bool,
                 built: Path | None = None, folder: bool = True, tee: Path | None = None,
                 made: dict[str, str] | None = None) -> T.MergedArtifact:
    """The artifact with a local folder: the merged cache, or `out` copied from it.

    The cache folder's path is computable from public fields, so anyone who can write there (a
    publish target that pointed into the cache, a hand copy) could plant a folder: it is used only
    when sealed by this registry for exactly the catalog's files, with the catalog's sizes and
    manifest digest; otherwise it is rebuilt from the blobs. `built` is a folder this process
    just merged: it becomes the cache folder when it holds the recorded files. `tee` is the
    folder beside `out` that the engine wrote its second copy of the shards into (`made`: their
    digests): what is not the recorded files is dropped, the rest of `out` added (cache.export_files).
    """
    from registry.storage import cache, materialize

    with core.db.read() as s:
        m = need(s, M.MergedArtifact, merged_id)
        v = need(s, M.AdapterVersion, m.version_id)
        name = need(s, M.Adapter, v.adapter_id).name
        base = need(s, M.BaseModelRow, m.base_model_id)
        files = {k: f["digest"] for k, f in m.files.items()}
        sizes = {k: int(f["size"]) for k, f in m.files.items()}
        art = convert.merged(m, f"{name}@{v.version}", base, created=created)
    blobs = core.settings.cache_dir / "blobs"
    hashed = [MANIFEST] if MANIFEST in files else []
    if tee is not None:
        _keep_recorded(tee, made or {}, files)
    if out is not None:
        stored = _stored_paths(core, files, sizes)
        if stored is not None:  # the user's own copy, straight from the stored blobs
            return dataclasses.replace(art, path=cache.export_files(stored, out, build=tee))
    if built is not None and _holds(built, files, sizes) and not _aliases_store(core, built, files):
        cache.install(built, merged_dir(core, m.cache_key), files, cache_root=blobs, sizes=sizes, hashed=hashed)
    if not folder and out is None:
        return art
    path = materialize(core.store, files, merged_dir(core, m.cache_key), cache_root=blobs, sizes=sizes, sealed=True,
                       hashed=hashed)
    if out is not None:
        # The user's own copy: reflinks or one copy of the sealed cache folder, never links to it.
        path = cache.export_files({rel: path / rel for rel in files}, out, build=tee)
    return dataclasses.replace(art, path=path)


def _stored_paths(core: Core, files: dict[str, str], sizes: dict[str, int]) -> dict[str, Path] | None:
    """{relative path: the stored blob} when the store is a local folder holding every file at its
    catalog size, else None. A local store's blobs were verified (or hashed while written) before
    they became visible, so they are copied without another hash."""
    where = getattr(core.store, "path", None)
    if where is None:
        return None
    paths = {rel: Path(where(digest)) for rel, digest in files.items()}
    try:
        if all(p.stat().st_size == sizes[rel] and not p.is_symlink() for rel, p in paths.items()):
            return paths
    except OSError:
        pass
    return None


def _aliases_store(core: Core, folder: Path, files: dict[str, str]) -> bool:
    """Whether a file of `folder` is a stored blob itself (adopted by a local store): such a folder
    never becomes the cache folder, where an edit in place would change the blob."""
    where = getattr(core.store, "path", None)
    if where is None:
        return False
    for rel, digest in files.items():
        try:
            if os.path.samefile(folder / rel, where(digest)):
                return True
        except OSError:
            pass
    return False


def _holds(folder: Path, files: dict[str, str], sizes: dict[str, int]) -> bool:
    """`folder` (written by this process) holds exactly `files`, at their sizes, manifest included."""
    present = {p.relative_to(folder).as_posix(): p for p in folder.rglob("*") if p.is_file()}
    if set(present) != set(files) or any(present[rel].stat().st_size != n for rel, n in sizes.items()):
        return False
    from registry.storage.digest import sha256_file

    return MANIFEST not in files or sha256_file(folder / MANIFEST) == files[MANIFEST]


def folder_of(core: Core, art: T.MergedArtifact) -> Path:
    """A local folder of a merged artifact (its cache folder, rebuilt from blobs when missing)."""
    return art.path or _cache_folder(core, art.id)


def _cache_folder(core: Core, merged_id: int) -> Path:
    path = _with_folder(core, merged_id, None, created=False).path
    assert path is not None  # _with_folder always sets it
    return path


@contextlib.contextmanager
def publish_folder(core: Core, merged_id: int) -> Iterator[Path]:
    """A folder of the artifact's files, every byte checked against the catalog, for a publisher to read.

    With a local store that holds every blob, it is hard links to the stored blobs in a private
    work folder, removed afterwards: each stored byte is hashed once and nothing is copied before
    the publisher's own copy or upload (publishers only read their folder). Otherwise (another
    store, or a stored blob that fails its digest) it is the verified cache folder (`verified_folder`).

    Raises:
        IntegrityFailure: a stored blob (or the rebuilt cache folder) differs from the catalog record
    """
    from registry.storage import cache

    with core.db.read() as s:
        m = need(s, M.MergedArtifact, merged_id)
        files = {k: f["digest"] for k, f in m.files.items()}
        sizes = {k: int(f["size"]) for k, f in m.files.items()}
    stored = _stored_paths(core, files, sizes)
    work = core.settings.cache_dir / "merged" / f".work-{uuid.uuid4().hex[:12]}"
    try:
        if stored is not None and (not _link_all(stored, work) or cache.mismatched(work, files)):
            stored = None  # a stored blob changed in place ships never: the cache copy, checked, or nothing
        yield work if stored is not None else verified_folder(core, merged_id)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _link_all(sources: dict[str, Path], folder: Path) -> bool:
    """Hard-link `sources` ({relative path: file}) into a new `folder`; False where links are impossible."""
    try:
        for rel, src in sources.items():
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            os.link(src, folder / rel)
    except OSError:
        shutil.rmtree(folder, ignore_errors=True)
        return False
    return True


def verified_folder(core: Core, merged_id: int) -> Path:
    """The artifact's cache folder with every byte checked against the catalog (before it ships).

    A file that differs (edited in place, even at the same size) is fetched again from the store,
    verified, and the folder rebuilt.

    Raises:
        IntegrityFailure: the rebuilt folder still differs from the catalog record
    """
    from registry.storage import cache

    with core.db.read() as s:
        m = need(s, M.MergedArtifact, merged_id)
        files = {k: f["digest"] for k, f in m.files.items()}
    path = _cache_folder(core, merged_id)
    bad = cache.mismatched(path, files)
    if bad:
        cache.evict(core.settings.cache_dir / "blobs", [files[rel] for rel in bad])
        cache.discard(path)
        path = _cache_folder(core, merged_id)
        bad = cache.mismatched(path, files)
    if bad:
        raise IntegrityFailure(f"merged artifact {merged_id}: {bad[0]} does not match its recorded digest",
                               merged_id=merged_id, file=bad[0])
    return path
