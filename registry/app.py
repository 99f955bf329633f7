"""Registry: the composition root. The CLI, the HTTP API and the workers all hold one of these.

`Registry(settings)` builds the Core (settings, database, store, actor) once and hangs its
sub-objects off it: `reg.jobs` (the queue), `reg.release` (aliases, gates, deprecation, gc,
events) and `reg.tokens` (API tokens). Everything else a user can do is a method here that
calls one workflow (registry/workflows/). Methods take the main identifier positionally,
everything else keyword-only, and return frozen dataclasses from registry.types.
`registry.protocol.RegistryProtocol` is the contract `Registry` and `registry.Client` share.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

# Only what a lookup needs is imported here: `adapter-registry ls / show / resolve` import this
# module, so the queue, release management, tokens and the push / merge / verify workflows (and
# what they import) are imported by the methods and sub-objects that use them.
from registry import types as T
from registry.catalog import queries as Q
from registry.core import Core
from registry.errors import BaseModelNotFound, InvalidInput
from registry.refs import check_metric_name, parse_metric_filter, parse_metric_value, parse_ref, parse_tag
from registry.settings import Settings

if TYPE_CHECKING:  # pragma: no cover
    from registry.jobs.api import JobsAPI
    from registry.release.api import Release
    from registry.targets import Targets
    from registry.tokens import TokenInfo, Tokens

Progress = Callable[[str, int, int], None]  # (stage, done, total)
MergeProgress = Callable[[int, int, str], None]  # (done, total, tensor)


class Registry:
    """The adapter registry over one catalog database and one artifact store."""

    def __init__(self, settings: Settings | None = None, *, upgrade: bool | None = None, core: Core | None = None):
        self.core = core or Core.open(settings or Settings.from_env(), upgrade=upgrade)

    # The sub-objects are built once, on first use: a lookup needs none of them.
    @cached_property
    def jobs(self) -> JobsAPI:
        """The job queue: verify / merge / publish jobs and workers."""
        from registry.jobs.api import JobsAPI

        return JobsAPI(self.core)

    @cached_property
    def release(self) -> Release:
        """Release management: aliases, gates, deprecation, gc, events."""
        from registry.release.api import Release

        return Release(self.core)

    @cached_property
    def tokens(self) -> Tokens:
        """API tokens."""
        from registry.tokens import Tokens

        return Tokens(self.core)

    @cached_property
    def targets(self) -> Targets:
        """Publish targets and base roots per namespace (admin policy)."""
        from registry.targets import Targets

        return Targets(self.core)

    # -- plumbing ---------------------------------------------------------------------------
    @property
    def settings(self) -> Settings:
        return self.core.settings

    @property
    def db(self):
        return self.core.db

    @property
    def store(self):
        return self.core.store

    @property
    def actor(self) -> str:
        return self.core.actor

    def as_actor(self, actor: str) -> Registry:
        """This registry acting as `actor` in the audit log (one per HTTP request): same database and store."""
        return Registry(core=self.core.as_actor(actor))

    def as_token(self, token: TokenInfo | None) -> Registry:
        """The registry as an HTTP caller holding `token` sees it (Core.as_token)."""
        return Registry(core=self.core.as_token(token))

    def close(self) -> None:
        self.core.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- base models -----------------------------------------------------------------------
    def add_base(self, path: str | Path, *, name: str, revision: str | None = None, store_weights: bool = False,
                 full_hash: bool = False, progress: Progress | None = None, hub_id: str | None = None) -> T.BaseModel:
        """Register a Hugging Face model folder by fingerprint (weights stay where they are unless stored).

        Args:
            hub_id: the Hub repo id the folder holds, with its casing (`Meta-Llama/Llama-3.2-1B`); the
                base is then found by it too (`show_base`, push's guess from base_model_name_or_path).
                The folder's model card (README.md) is read either way (license, pipeline_tag, tags, ...).

        Raises:
            InvalidName, InvalidModel: bad name; not a model folder (no config.json, no safetensors, corrupt headers)
            InvalidInput: not a Hub repo id
            Conflict: this base is already registered with another Hub id
        """
        from registry.workflows import push as push_wf

        return push_wf.add_base(self.core, Path(path), name=name, revision=revision, store_weights=store_weights,
                                full_hash=full_hash, progress=progress, hub_id=hub_id)

    def list_bases(self, name: str | None = None) -> list[T.BaseModel]:
        with self.db.read() as s:
            return Q.list_bases(s, name)

    def show_base(self, ref: str) -> T.BaseModel:
        from registry.catalog import convert

        with self.db.read() as s:
            return convert.base_model(Q.get_base(s, ref))

    def base_folder(self, ref: str) -> Path:
        """A local folder holding the base model (its registered location, or the stored copy)."""
        from registry.workflows import resolve as resolve_wf

        return resolve_wf.base_folder(self.core, ref)

    # -- adapters ----------------------------------------------------------------------------
    def push(self, path: str | Path, *, name: str, base: str | None = None,
             tags: Mapping[str, str] | Iterable[str] = (), description: str = "",
             progress: Progress | None = None, checkpoint: str | None = None,
             adapter: str | None = None) -> T.AdapterVersion:
        """Register an adapter folder (PEFT or Trainer/TRL output) as a new immutable version.

        Pushing the same files again returns the existing version (`created` False).

        Args:
            checkpoint: of a Trainer output: "last", "best" or a step (default: the root's adapter,
                else best_model_checkpoint when recorded, else the last); `training` says which.
            adapter: of a multi-adapter save: the one to push ("default" is the root's); a folder
                holding several needs it (or `push_all`).
        Raises:
            InvalidName, InvalidAdapter, UnsafeFormat, CorruptFile: bad input (nothing stored)
            Incompatible: the static check against the base failed (nothing stored)
            BaseModelNotFound: `base` is not registered
        """
        from registry.workflows import push as push_wf

        return push_wf.push(self.core, Path(path), name=name, base=base, tags=_tags(tags), description=description,
                            progress=progress, checkpoint=checkpoint, adapter=adapter)

    def push_all(self, path: str | Path, *, name: str, base: str | None = None,
                 tags: Mapping[str, str] | Iterable[str] = (), description: str = "",
                 progress: Progress | None = None, checkpoint: str | None = None,
                 names: Mapping[str, str] | None = None) -> T.MultiPush:
        """Register every adapter of a multi-adapter save, one version each.

        "default" (the root's adapter) becomes `name`, any other ADAPTER `name`-ADAPTER, unless
        `names` maps it ({"sql": "team-a/sql-bot"}). All are checked before any is stored.

        Raises:
            what `push` raises, for any of them (nothing stored); InvalidInput: `names` is wrong
        """
        from registry.workflows import push as push_wf

        return push_wf.push_all(self.core, Path(path), name=name, base=base, tags=_tags(tags),
                                description=description, progress=progress, checkpoint=checkpoint, names=names)

    def search(self, *, base: str | None = None, min_rank: int | None = None, max_rank: int | None = None,
               peft_type: str | None = None, target_modules: Iterable[str] = (),
               tags: Mapping[str, str] | Iterable[str] = (), metrics: Iterable[str] = (), sort: str | None = None,
               limit: int = 50, offset: int = 0, include_deprecated: bool = False, name: str | None = None,
               use_dora: bool | None = None, count: bool = False) -> T.SearchPage:
        """Adapter versions matching every filter. `metrics` are expressions like 'acc>=0.6'."""
        q = Q.SearchQuery(
            base=base, min_rank=min_rank, max_rank=max_rank, peft_type=peft_type, target_modules=tuple(target_modules),
            tags=_tags(tags), metrics=tuple(parse_metric_filter(m) for m in metrics), sort=sort, limit=limit,
            offset=offset, include_deprecated=include_deprecated, name=name, use_dora=use_dora, count=count)
        with self.db.lookup() as s:
            return Q.search(s, q)

    def show(self, ref: str) -> T.AdapterVersion:
        """One version with files, evals, compatibility, training, verifications, merges, publications."""
        with self.db.lookup() as s:
            adapter, row = Q.get_version(s, parse_ref(ref))
            return Q.detail(s, adapter, row)

    def adapter(self, name: str) -> T.Adapter:
        """An adapter with all its versions and aliases."""
        from registry.adapters.inspect import check_name

        with self.db.read() as s:
            return Q.adapter_summary(s, Q.get_adapter(s, check_name(name)))

    def get(self, ref: str) -> T.AdapterVersion:
        """A version without the detail fields (fast: what alias resolution needs)."""
        with self.db.lookup() as s:
            adapter, row = Q.get_version(s, parse_ref(ref))
            return Q.hydrate(s, [row], adapters={adapter.id: adapter})[0]

    def resolve(self, ref: str, *, local_dir: str | Path | None = None) -> Path:
        """A local folder with the adapter's files, digests verified, for PeftModel.from_pretrained.

        When the version's base is registered and on this machine, the folder's adapter_config.json
        names the base's folder (the catalog keeps the original), so
        `AutoPeftModelForCausalLM.from_pretrained(folder)` loads offline (storage/loadable.py).

        Args:
            local_dir: also copy the folder there (a new folder the caller owns); it is returned.
        Raises:
            AlreadyExists: `local_dir` exists. IntegrityFailure: a stored blob is corrupt.
        """
        from registry.workflows import resolve as resolve_wf

        return resolve_wf.loadable_folder(self.core, ref, local_dir=Path(local_dir) if local_dir else None)

    def load(self, ref: str, *, device: str = "cpu", dtype: str | None = None) -> Any:
        """The version as a `peft.PeftModel` on its registered base (loaded from the base's folder, offline).

        Args:
            device: where the model goes ("cpu", "cuda:0"). dtype: the base's dtype; None: as stored.
        Raises:
            BaseModelNotFound: the version has no base, or its base's folder is gone and not stored.
        """
        from registry.verify.load import peft_model
        from registry.workflows import resolve as resolve_wf

        v = self.get(ref)
        base = v.base
        if base is None:
            raise BaseModelNotFound(f"{v.ref} has no base model recorded",
                                    hint="record one with: adapter-registry version set-base REF BASE")
        base_dir = resolve_wf.base_folder(self.core, f"{base.name}@{base.fingerprint[:16]}")
        # v.ref, not ref: the version whose base was read, wherever an alias moves meanwhile
        return peft_model(self.resolve(v.ref), base_dir, device=device, dtype=dtype)

    def load_merged(self, ref: str, *, device: str = "cpu", dtype: str | None = None) -> Any:
        """The version merged into its base, as a transformers model: the cached merged artifact (merged
        on the CPU now when there is none, as `merge` would), loaded onto `device`.

        Raises:
            what `merge` raises.
        """
        from registry.verify.load import merged_model

        art = self.merge(ref, dtype=dtype)
        assert art.path is not None  # merge always hands back a local folder
        return merged_model(art.path, device=device, dtype=art.dtype)

    def set_base(self, ref: str, base: str, *, force: bool = False) -> T.AdapterVersion:
        """Record the base of a version pushed without one (workflows.push.set_base; audited)."""
        from registry.workflows import push as push_wf

        return push_wf.set_base(self.core, ref, base, force=force)

    def check_folder(self, path: str | Path, *, base: str | None = None) -> dict[str, Any]:
        """Validate a folder before any push; with `base`, also against that registered base
        (workflows.push.check_folder). Nothing is registered."""
        from registry.workflows import push as push_wf

        return push_wf.check_folder(self.core, Path(path), base=base)

    def check(self, ref: str, *, base: str | None = None) -> T.CompatReport:
        """Static compatibility of a version with its base (or another one); stored when it is its own base."""
        from registry.workflows import push as push_wf

        return push_wf.check(self.core, ref, base=base)

    # -- verification and merged models ----------------------------------------------------
    def verify(self, ref: str, *, base: str | None = None, dtype: str | None = None,
               device: str = "cpu") -> T.Verification:
        """Verify a version in this process (static check, then probes on `device`) and record it.

        `reg.jobs.verify` does the same through the queue. registry/gates.py says what a
        recorded verification counts for.
        """
        from registry import dtypes
        from registry.workflows import verify as verify_wf

        return verify_wf.verify(self.core, ref, base=base, dtype=dtypes.optional(dtype), device=device)

    def merge(self, ref: str, *, dtype: str | None = None, engine: str = "auto", device: str = "cpu",
              validate: bool = False, out: str | Path | None = None, max_shard_size: str | int = "5GB",
              progress: MergeProgress | None = None) -> T.MergedArtifact:
        """Merge a version into its base: a complete Hugging Face checkpoint, cached in the catalog.

        The cache key is (base fingerprint, adapter digest, dtype, engine version, device kind):
        asking again returns the stored artifact (`created` False) without merging.

        Returns:
            MergedArtifact whose `.path` is a local folder `from_pretrained` loads (`out` if given).
        Raises:
            Incompatible / InvalidAdapter / Unsupported / DiskFull / MergeError; nothing is recorded
            or left half-written when it raises.
        """
        from registry import dtypes
        from registry.workflows import merge as merge_wf

        return merge_wf.merge(self.core, ref, dtype=dtypes.optional(dtype), engine=engine, device=device,
                              validate=validate, out=Path(out) if out else None, max_shard_size=max_shard_size,
                              progress=progress)

    def merged(self, ref: str) -> list[T.MergedArtifact]:
        """The merged artifacts of a version."""
        return list(self.show(ref).merged)

    # -- evaluations -------------------------------------------------------------------------
    def add_eval(self, ref: str, metrics: Mapping[str, float] | Iterable[str], *, dataset: str | None = None,
                 split: str | None = None, source: str = "manual",
                 details: dict[str, Any] | None = None) -> list[T.EvalResult]:
        """Record metric values for a version (each becomes its current value of that metric)."""
        from registry.catalog import commands as C
        from registry.catalog import convert

        items = _metric_items(metrics, limit=self.settings.max_metrics_per_eval)
        for what, value, most in (("dataset", dataset, 200), ("split", split, 100), ("source", source, 50)):
            if value is not None and len(value) > most:
                raise InvalidInput(f"{what} is {len(value)} characters long; at most {most} are accepted")
        r = parse_ref(ref)
        with self.db.write() as s:
            _a, row = Q.get_version(s, r)
            vref = f"{r.name}@{row.version}"
            evs = C.add_evals(s, row, ref=vref, metrics=[(k, float(v)) for k, v in items], dataset=dataset,
                              split=split, source=source, details=details, actor=self.actor)
            return [convert.eval_result(e, vref) for e in evs]

    def add_lm_eval(self, ref: str, results_file: str | Path | Mapping[str, Any], *,
                    file_name: str | None = None) -> list[T.EvalResult]:
        """Import an lm-evaluation-harness results JSON: one result per (task, metric, filter, n-shot).

        Args:
            results_file: the results_*.json lm-eval wrote, or its parsed document.
            file_name: the name recorded in the details (default: the file's name).
        Returns:
            One EvalResult per metric identity, named `TASK/METRIC,FILTER@Nshot`; the short names
            (docs/EVALS.md) are set as the version's current values too.
        """
        from registry.catalog import commands as C
        from registry.catalog import convert
        from registry.evals import parse_lm_eval_doc, read_lm_eval

        if isinstance(results_file, Mapping):
            doc = results_file
        else:
            doc, file_name = read_lm_eval(Path(results_file)), file_name or Path(results_file).name
        metrics = parse_lm_eval_doc(doc, file=file_name)
        limit = self.settings.max_metrics_per_eval
        if len(metrics) > limit:
            raise InvalidInput(f"{len(metrics)} metrics in one evaluation; this registry records at most {limit} "
                               "metrics per evaluation", hint="split them over several evaluations", limit=limit)
        r = parse_ref(ref)
        with self.db.write() as s:
            _a, row = Q.get_version(s, r)
            vref = f"{r.name}@{row.version}"
            evs = C.add_lm_evals(s, row, ref=vref, metrics=metrics, actor=self.actor)
            return [convert.eval_result(e, vref) for e in evs]

    def evals(self, ref: str) -> list[T.EvalResult]:
        return list(self.show(ref).evals)

    # -- audit -------------------------------------------------------------------------------
    def audit(self, *, limit: int = 100, target: str | None = None) -> list[T.AuditEntry]:
        """Audit entries, newest first; `target` is a literal prefix of the entry's target."""
        with self.db.read() as s:
            return Q.audit(s, limit=limit, target=target)


def _tags(tags: Mapping[str, str] | Iterable[str]) -> dict[str, str]:
    return dict(tags) if isinstance(tags, Mapping) else dict(parse_tag(t) for t in tags)


def _metric_items(metrics: Mapping[str, float] | Iterable[str], *, limit: int) -> list[tuple[str, float]]:
    """(name, value) pairs from a mapping or NAME=VALUE strings, each checked (finite numbers only), at most `limit`."""
    if isinstance(metrics, Mapping):
        if len(metrics) > limit:
            raise InvalidInput(f"{len(metrics)} metrics in one evaluation; this registry records at most {limit} "
                               "metrics per evaluation", hint="split them over several evaluations", limit=limit)
        items = list(metrics.items())
    else:
        items = []
        for m in metrics:  # an iterable may be unbounded: stop counting past the limit
            if len(items) >= limit:
                raise InvalidInput(f"more than {limit} metrics in one evaluation; this registry records at most "
                                   f"{limit} metrics per evaluation", hint="split them over several evaluations",
                                   limit=limit)
            items.append(parse_metric_value(m))
    if not items:
        raise InvalidInput("no metrics given", hint="pass --metric NAME=VALUE")
    for k, v in items:
        check_metric_name(k)
        if not isinstance(v, (int, float)) or v != v or v in (float("inf"), float("-inf")):
            raise InvalidInput(f"metric {k!r} must be a finite number, got {v!r}")
    return items
