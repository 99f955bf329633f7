"""Registry: the composition root. The CLI, the HTTP API and the workers all hold one of these.

Everything a user can do is a method here (or on one of its small sub-objects: `jobs`,
`tokens`). Methods take the main identifier positionally, everything else keyword-only, and
return frozen dataclasses from registry.types.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable

from sqlalchemy import select

from registry import migrate
from registry import types as T
from registry.adapters.basemodel import fingerprint_base
from registry.adapters.compat import check_compat
from registry.adapters.inspect import AdapterManifest, check_name, inspect_adapter
from registry.catalog import commands as C
from registry.catalog import convert
from registry.catalog import models as M
from registry.catalog import queries as Q
from registry.db import Database
from registry.errors import BaseModelNotFound, Incompatible, InvalidInput, RegistryError
from registry.evals import parse_lm_eval
from registry.release.api import ReleaseMixin
from registry.release.gc import touch_blobs
from registry.refs import Ref, parse_metric_filter, parse_ref, parse_tag, check_metric_name
from registry.settings import Settings

Progress = Callable[[str, int, int], None]  # (stage, done, total)


class Registry(ReleaseMixin):
    """The adapter registry over one catalog database and one artifact store.

    Release management (aliases with gates, deprecation, impact, bulk operations, serving
    profiles, gc, events) comes from ReleaseMixin; jobs live on the `jobs` sub-object.
    """

    def __init__(self, settings: Settings | None = None, *, upgrade: bool | None = None):
        self.settings = settings or Settings.from_env()
        self.db = Database(self.settings.db_url)
        self._store = None
        auto = self.settings.auto_upgrade if upgrade is None else upgrade
        self._ensure_schema(auto and self.db.sqlite)

    # -- plumbing ---------------------------------------------------------------------------
    def _ensure_schema(self, auto: bool) -> None:
        cur = migrate.current(self.db.engine)
        head = migrate.head()
        if cur == head:
            return
        if auto:
            migrate.upgrade(self.db.engine)
            return
        raise RegistryError(f"the catalog schema is at {cur or 'nothing'}, this version needs {head}",
                            hint="run: adapter-registry db upgrade")

    @property
    def store(self):
        if self._store is None:
            from registry.storage import open_store

            self._store = open_store(self.settings.store_url, s3_endpoint=self.settings.s3_endpoint)
        return self._store

    @property
    def actor(self) -> str:
        return self.settings.actor_name

    def close(self) -> None:
        self.db.dispose()

    def __enter__(self) -> "Registry":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def as_actor(self, actor: str) -> "Registry":
        """A view of this registry that records `actor` in the audit log (one per HTTP request).

        It shares the database engine and the store; only the settings' actor differs.
        """
        import copy
        import dataclasses

        self.store  # build the store once, on the shared object, so views do not each open one
        view = copy.copy(self)
        view.settings = dataclasses.replace(self.settings, actor=actor)
        return view

    @property
    def jobs(self):
        from registry.jobs.api import JobsAPI

        return JobsAPI(self)

    # -- base models -----------------------------------------------------------------------
    def add_base(self, path: str | Path, *, name: str, revision: str | None = None, store_weights: bool = False,
                 full_hash: bool = False, progress: Progress | None = None) -> T.BaseModel:
        """Register a local Hugging Face model folder by fingerprint (weights stay where they are).

        Raises:
            InvalidModel: not a model folder (no config.json, no safetensors, corrupt headers)
        """
        check_name(name)
        fp = fingerprint_base(Path(path), revision=revision, full_hash=full_hash or store_weights,
                              max_header_bytes=self.settings.max_header_bytes)
        blobs: dict[str, int] = {}
        if store_weights:
            for rel, info in fp.files.items():
                b = self.store.put_file(fp.folder / rel, expected=info.get("digest"))
                blobs[b.digest] = b.size
                if progress:
                    progress("upload", len(blobs), len(fp.files))
        with self.db.write() as s:
            C.add_blobs(s, blobs)
            row, created = C.register_base(s, fp, name=name, actor=self.actor, location=str(fp.folder),
                                           weights_stored=store_weights)
            return convert.base_model(row, created=created)

    def list_bases(self, name: str | None = None) -> list[T.BaseModel]:
        with self.db.read() as s:
            return Q.list_bases(s, name)

    def show_base(self, ref: str) -> T.BaseModel:
        with self.db.read() as s:
            return convert.base_model(Q.get_base(s, ref))

    def base_folder(self, ref: str) -> Path:
        """A local folder holding the base model (its registered location, or the stored copy)."""
        with self.db.read() as s:
            row = Q.get_base(s, ref)
            files = dict(row.files)
            location, stored, fpr = row.location, row.weights_stored, row.fingerprint
        p = Path(location)
        if (p / "config.json").is_file():
            return p
        if stored:
            from registry.storage import materialize

            dest = self.settings.cache_dir / "bases" / fpr
            return materialize(self.store, {k: v["digest"] for k, v in files.items()}, dest,
                               cache_root=self.settings.cache_dir / "blobs")
        raise BaseModelNotFound(f"base model {ref!r} is not at {location} any more and its weights are not stored",
                                hint="register it again with --store-weights, or restore the folder")

    # -- adapters ----------------------------------------------------------------------------
    def push(self, path: str | Path, *, name: str, base: str | None = None, tags: dict[str, str] | Iterable[str] = (),
             description: str = "", progress: Progress | None = None) -> T.AdapterVersion:
        """Register an adapter folder (PEFT or Trainer/TRL output) as a new immutable version.

        Pushing the same files again returns the existing version (`created` False).

        Raises:
            InvalidName, InvalidAdapter, UnsafeFormat, CorruptFile: bad input (nothing stored)
            Incompatible: the static check against the base failed (nothing stored)
            BaseModelNotFound: `base` is not registered
        """
        check_name(name)
        tags = dict(parse_tag(t) for t in tags) if not isinstance(tags, dict) else dict(tags)
        with tempfile.TemporaryDirectory(prefix="adapter-registry-push-") as tmp:
            return self._push(Path(path), Path(tmp), name=name, base=base, tags=tags, description=description,
                              progress=progress)

    def _push(self, path: Path, tmp: Path, *, name: str, base: str | None, tags: dict[str, str], description: str,
              progress: Progress | None) -> T.AdapterVersion:
        if self.settings.allow_pickle:
            from registry.adapters.convert import convert_folder
            from registry.adapters.inspect import find_adapter_folder

            folder, _root = find_adapter_folder(path)
            path = convert_folder(folder, tmp / "converted")
        manifest = inspect_adapter(path, allow_pickle=self.settings.allow_pickle,
                                   max_header_bytes=self.settings.max_header_bytes)
        with self.db.read() as s:
            base_row = Q.get_base(s, base) if base else self._guess_base(s, manifest)
            compat = self._compat(manifest, base_row) if base_row is not None else None
        if compat and compat["status"] == "fail":
            raise Incompatible(f"{name}: does not fit base {base_row.name}: {compat['errors'][0]}"
                               + (f" (and {len(compat['errors']) - 1} more)" if len(compat["errors"]) > 1 else ""),
                               errors=compat["errors"])
        # Mark the blobs as in use before looking in the store, so a concurrent gc that already
        # judged an identical old blob unreferenced keeps it (registry/release/gc.py explains).
        with self.db.write() as s:
            touch_blobs(s, {e.digest: e.size for e in manifest.files})
        for i, e in enumerate(manifest.files):
            self.store.put_file(e.local, expected=e.digest)
            if progress:
                progress("upload", i + 1, len(manifest.files))
        with self.db.write() as s:
            base_row = s.get(M.BaseModelRow, base_row.id) if base_row is not None else None
            adapter, row, created = C.create_version(s, manifest, name=name, base=base_row, tags=tags,
                                                     description=description, compat=compat, actor=self.actor)
            out = Q.hydrate(s, [row])[0]
        import dataclasses

        return dataclasses.replace(out, created=created)

    def _guess_base(self, s, manifest: AdapterManifest) -> M.BaseModelRow | None:
        """Link to a registered base when the config's base_model_name_or_path names exactly one."""
        hint = manifest.fields.base_model_hint
        if not hint:
            return None
        B = M.BaseModelRow
        match = B.name == hint
        if hint.startswith(("/", ".")):  # a local path: match the registered folder too
            match = match | (B.location == str(Path(hint).resolve()))
        cands = list(s.scalars(select(B).where(match).order_by(B.id.desc())))
        names = {c.name for c in cands}
        return cands[0] if len(names) == 1 else None

    def _compat(self, manifest: AdapterManifest, base: M.BaseModelRow) -> dict[str, Any]:
        vocab = _tokenizer_vocab(manifest)
        rep = check_compat(manifest.fields, manifest.header.tensors, base.layout, base_config=base.config,
                           tied=base.tie_word_embeddings, zero_b=manifest.zero_b, adapter_vocab=vocab)
        rep["base"] = {"name": base.name, "revision": base.revision, "fingerprint": base.fingerprint}
        return rep

    def search(self, *, base: str | None = None, min_rank: int | None = None, max_rank: int | None = None,
               peft_type: str | None = None, target_modules: Iterable[str] = (), tags: Iterable[str] | dict = (),
               metrics: Iterable[str] = (), sort: str | None = None, limit: int = 50, offset: int = 0,
               include_deprecated: bool = False, name: str | None = None, use_dora: bool | None = None,
               count: bool = False) -> T.SearchPage:
        """Adapter versions matching every filter. `metrics` are expressions like 'acc>=0.6'."""
        q = Q.SearchQuery(
            base=base, min_rank=min_rank, max_rank=max_rank, peft_type=peft_type,
            target_modules=tuple(target_modules),
            tags=dict(tags) if isinstance(tags, dict) else dict(parse_tag(t) for t in tags),
            metrics=tuple(parse_metric_filter(m) for m in metrics), sort=sort, limit=limit, offset=offset,
            include_deprecated=include_deprecated, name=name, use_dora=use_dora, count=count)
        with self.db.lookup() as s:
            return Q.search(s, q)

    def show(self, ref: str) -> T.AdapterVersion:
        """One version with files, evals, compatibility, training, verifications, merges, publications."""
        r = parse_ref(ref)
        with self.db.lookup() as s:
            adapter, row = Q.get_version(s, r)
            return Q.detail(s, adapter, row)

    def adapter(self, name: str) -> T.Adapter:
        """An adapter with all its versions and aliases."""
        with self.db.read() as s:
            return Q.adapter_summary(s, Q.get_adapter(s, check_name(name)))

    def get(self, ref: str) -> T.AdapterVersion:
        """A version without the detail fields (fast: what alias resolution needs)."""
        with self.db.lookup() as s:
            adapter, row = Q.get_version(s, parse_ref(ref))
            return Q.hydrate(s, [row], adapters={adapter.id: adapter})[0]

    def resolve(self, ref: str) -> Path:
        """A local folder with the adapter's files, digests verified, for PeftModel.from_pretrained."""
        from registry.storage import materialize

        r = parse_ref(ref)
        with self.db.read() as s:
            _a, row = Q.get_version(s, r)
            files = {f.path: f.digest for f in row.files}
            digest, deprecated, reason = row.content_digest, row.deprecated, row.deprecation_reason
        if deprecated:
            import warnings

            warnings.warn(f"{ref} is deprecated" + (f": {reason}" if reason else ""), DeprecationWarning, stacklevel=2)
        dest = self.settings.cache_dir / "adapters" / digest
        return materialize(self.store, files, dest, cache_root=self.settings.cache_dir / "blobs")

    def check(self, ref: str, *, base: str | None = None) -> T.CompatReport:
        """Static compatibility of a version with its base (or another one); stored when it is its own base."""
        r = parse_ref(ref)
        folder = self.resolve(ref)
        manifest = inspect_adapter(folder, allow_pickle=False, max_header_bytes=self.settings.max_header_bytes)
        with self.db.write() as s:
            _a, row = Q.get_version(s, r)
            base_row = Q.get_base(s, base) if base else row.base_model
            if base_row is None:
                raise BaseModelNotFound(f"{ref} has no base model recorded; pass --base NAME")
            rep = self._compat(manifest, base_row)
            if row.base_model_id == base_row.id:
                row.compat, row.compat_status = rep, rep["status"]
            return T.CompatReport(f"{r.name}@{row.version}", convert.base_ref(base_row), rep["status"],
                                  tuple(rep["errors"]), tuple(rep["warnings"]), rep["modules_touched"],
                                  {k: v for k, v in rep.items() if k not in ("status", "errors", "warnings")})

    # -- merged models -----------------------------------------------------------------------
    def merge(self, ref: str, *, dtype: str | None = None, engine: str = "auto", device: str = "cpu",
              validate: bool = False, out: str | Path | None = None, max_shard_size: str | int = "5GB",
              progress: Callable[[int, int, str], None] | None = None) -> T.MergedArtifact:
        """Merge a version into its base: a complete Hugging Face checkpoint, cached in the catalog.

        The cache key is (base fingerprint, adapter digest, dtype, engine version, device kind):
        asking again returns the stored artifact (`created` False) without merging.

        Returns:
            MergedArtifact whose `.path` is a local folder `from_pretrained` loads (`out` if given).
        Raises:
            Incompatible / InvalidAdapter / Unsupported / DiskFull / MergeError; nothing is recorded
            or left half-written when it raises.
        """
        from registry.merging import merge_version

        return merge_version(self, ref, dtype=dtype, engine=engine, device=device, validate=validate,
                             out=Path(out) if out else None, max_shard_size=max_shard_size, progress=progress)

    def merged(self, ref: str) -> list[T.MergedArtifact]:
        """The merged artifacts of a version."""
        return list(self.show(ref).merged)

    # -- evaluations -------------------------------------------------------------------------
    def add_eval(self, ref: str, metrics: dict[str, float] | Iterable[str], *, dataset: str | None = None,
                 split: str | None = None, source: str = "manual", details: dict | None = None) -> list[T.EvalResult]:
        """Record metric values for a version (each becomes its current value of that metric)."""
        from registry.refs import parse_metric_value

        items = (list(metrics.items()) if isinstance(metrics, dict) else [parse_metric_value(m) for m in metrics])
        if not items:
            raise InvalidInput("no metrics given", hint="pass --metric NAME=VALUE")
        for k, v in items:
            check_metric_name(k)
            if not isinstance(v, (int, float)) or v != v or v in (float("inf"), float("-inf")):
                raise InvalidInput(f"metric {k!r} must be a finite number, got {v!r}")
        r = parse_ref(ref)
        with self.db.write() as s:
            _a, row = Q.get_version(s, r)
            vref = f"{r.name}@{row.version}"
            evs = [C.add_eval(s, row, ref=vref, metric=k, value=float(v), dataset=dataset, split=split,
                              source=source, details=details, actor=self.actor) for k, v in items]
            return [convert.eval_result(e, vref) for e in evs]

    def add_lm_eval(self, ref: str, results_file: str | Path) -> list[T.EvalResult]:
        """Import an lm-evaluation-harness results JSON."""
        metrics, details = parse_lm_eval(Path(results_file))
        return self.add_eval(ref, metrics, source="lm-eval", details=details)

    def evals(self, ref: str) -> list[T.EvalResult]:
        return list(self.show(ref).evals)

    # -- audit -------------------------------------------------------------------------------
    def audit(self, *, limit: int = 100, target: str | None = None) -> list[T.AuditEntry]:
        with self.db.read() as s:
            q = select(M.AuditEntry).order_by(M.AuditEntry.id.desc()).limit(limit)
            if target:
                q = q.where(M.AuditEntry.target.startswith(target))
            return [T.AuditEntry(a.id, a.at, a.actor, a.action, a.target, a.details) for a in s.scalars(q)]


def _tokenizer_vocab(manifest: AdapterManifest) -> int | None:
    tok = next((e.local for e in manifest.files if e.path == "tokenizer.json"), None)
    if tok is None:
        return None
    try:
        doc = json.loads(Path(tok).read_text())
        return len(doc.get("model", {}).get("vocab", {})) + len(
            [t for t in doc.get("added_tokens", []) if t.get("id", 0) >= len(doc.get("model", {}).get("vocab", {}))])
    except (OSError, ValueError, AttributeError):
        return None
