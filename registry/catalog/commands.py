"""The write side of the catalog. Every function runs inside the caller's write transaction.

The SQL that guards concurrency lives here: version numbering (`create_version`) and upserts.
The job claim lives in jobs/queue.py.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Result, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from registry.adapters.basemodel import BaseFingerprint
from registry.adapters.inspect import AdapterManifest
from registry.adapters.targets import leaf_targets
from registry.catalog import models as M
from registry.db import Base
from registry.errors import Conflict
from registry.evals import Identity, LmEvalMetric, names

V = M.AdapterVersion


def insert_ignore(s: Session, table: type[Base], values: dict[str, Any] | list[dict[str, Any]],
                  index_elements: list[str]) -> Result[Any]:
    """INSERT ... ON CONFLICT DO NOTHING on SQLite and PostgreSQL."""
    ins = (postgresql.insert if s.get_bind().dialect.name == "postgresql" else sqlite.insert)(table)
    return s.execute(ins.values(values).on_conflict_do_nothing(index_elements=index_elements))


def upsert(s: Session, table: type[Base], values: list[dict[str, Any]], index_elements: list[str],
           update_columns: list[str]) -> Result[Any]:
    """INSERT ... ON CONFLICT DO UPDATE (the given columns from the new row) on SQLite and PostgreSQL."""
    ins = (postgresql.insert if s.get_bind().dialect.name == "postgresql" else sqlite.insert)(table).values(values)
    return s.execute(ins.on_conflict_do_update(index_elements=index_elements,
                                               set_={c: ins.excluded[c] for c in update_columns}))


def lock_version(s: Session, row: M.AdapterVersion) -> None:
    """Serialise writers of one version's evaluations: SELECT ... FOR UPDATE of the version row on
    PostgreSQL (READ COMMITTED: what is read after it includes what the previous holder committed);
    SQLite write transactions are already serialised by BEGIN IMMEDIATE (registry/db.py)."""
    if s.get_bind().dialect.name == "postgresql":
        s.execute(select(V.id).where(V.id == row.id).with_for_update())


def record(s: Session, actor: str, action: str, target: str, details: dict[str, Any] | None = None) -> None:
    """Append to the audit log and to the events outbox, in the caller's transaction."""
    s.add(M.AuditEntry(actor=actor, action=action, target=target, details=details))
    s.add(M.Event(kind=action, subject=target, payload={"actor": actor, **(details or {})}))


def add_blobs(s: Session, blobs: dict[str, int]) -> None:
    if blobs:
        insert_ignore(s, M.Blob, [{"digest": d, "size": n} for d, n in sorted(blobs.items())], ["digest"])


def touch_blobs(s: Session, blobs: dict[str, int]) -> None:
    """Mark blobs as just used (insert or refresh created_at), so gc keeps them for the grace period.

    The gc protocol (registry/release/gc.py): whoever puts blobs calls this in its own short
    transaction *before* looking in the store; workflows/ingest.py is the one path that does.
    """
    if not blobs:
        return
    now = M.utcnow()
    s.execute(update(M.Blob).where(M.Blob.digest.in_(list(blobs))).values(created_at=now))
    insert_ignore(s, M.Blob, [{"digest": d, "size": n, "created_at": now} for d, n in sorted(blobs.items())],
                  ["digest"])


def register_base(s: Session, fp: BaseFingerprint, *, name: str, actor: str, location: str,
                  weights_stored: bool, hub_id: str | None = None,
                  card: dict[str, Any] | None = None) -> tuple[M.BaseModelRow, bool]:
    """The base row for (name, fingerprint), created if new. Same folder twice -> same row.

    A second registration may add what the first did not know (stored weights, the Hub id, the
    card), never change it: another Hub id for the same row is a Conflict.
    """
    B = M.BaseModelRow
    row = s.scalar(select(B).where(B.name == name, B.fingerprint == fp.fingerprint))
    if row is not None:
        # the Hub ignores case in ids: Org/Model and org/model are the same repo
        if hub_id is not None and row.hub_id is not None and row.hub_id.lower() != hub_id.lower():
            raise Conflict(f"base {name} is registered as Hub repo {row.hub_id}, not {hub_id}", base=name,
                           hint="register it under another --name")
        if weights_stored and not row.weights_stored:
            row.weights_stored = True
            row.files = fp.files
        if hub_id is not None and row.hub_id is None:
            row.hub_id = hub_id
            record(s, actor, "base.set_hub_id", f"{name}@{fp.revision or fp.fingerprint[:12]}", {"hub_id": hub_id})
        if card and not row.card:
            row.card = dict(card)
        return row, False
    row = B(
        name=name, revision=fp.revision, fingerprint=fp.fingerprint, architecture=fp.architecture,
        model_type=fp.model_type, config_hash=fp.config_hash, layout_hash=fp.layout_hash,
        tokenizer_hash=fp.tokenizer_hash, vocab_size=fp.vocab_size, hidden_size=fp.hidden_size,
        num_layers=fp.num_layers, dtype=fp.dtype, tie_word_embeddings=fp.tie_word_embeddings,
        param_count=fp.param_count, total_size=fp.total_size, location=location, weights_stored=weights_stored,
        layout=fp.layout, config=fp.config, files=fp.files, created_by=actor, hub_id=hub_id, card=dict(card or {}),
    )
    s.add(row)
    s.flush()
    record(s, actor, "base.add", f"{name}@{fp.revision or fp.fingerprint[:12]}",
           {"fingerprint": fp.fingerprint, "location": location, **({"hub_id": hub_id} if hub_id else {})})
    return row, True


def lock_adapter(s: Session, name: str, *, actor: str, description: str = "") -> M.Adapter:
    """The adapter row, created if needed, locked for the rest of the transaction.

    PostgreSQL: INSERT ... ON CONFLICT DO NOTHING makes concurrent creators agree on one row, and
    SELECT ... FOR UPDATE makes every later step of a concurrent push wait for this one.
    SQLite: the write transaction began with BEGIN IMMEDIATE, so writers are already serialised.
    """
    insert_ignore(s, M.Adapter, {"name": name, "namespace": name.split("/")[0] if "/" in name else "",
                                  "description": description, "latest_version": 0, "created_by": actor,
                                  "created_at": M.utcnow()}, ["name"])
    row = s.scalar(select(M.Adapter).where(M.Adapter.name == name).with_for_update())
    assert row is not None  # inserted just above, by us or by a concurrent creator, and never deleted
    return row


def create_version(s: Session, manifest: AdapterManifest, *, name: str, base: M.BaseModelRow | None,
                   tags: dict[str, str], description: str, compat: dict[str, Any] | None,
                   actor: str) -> tuple[M.Adapter, M.AdapterVersion, bool]:
    """Register a version: the same content returns the existing version; new content gets max+1.

    Race-free because the adapter row is locked (lock_adapter) before the content lookup and the
    numbering; the unique constraints (adapter_id, version) and (adapter_id, content_digest) are
    the backstop should anything slip through.
    """
    adapter = lock_adapter(s, name, actor=actor, description=description)
    existing = s.scalar(select(V).where(V.adapter_id == adapter.id, V.content_digest == manifest.content_digest))
    if existing is not None:
        return adapter, existing, False
    number = s.scalar(update(M.Adapter).where(M.Adapter.id == adapter.id)
                      .values(latest_version=M.Adapter.latest_version + 1).returning(M.Adapter.latest_version))
    f = manifest.fields
    min_rank, max_rank = f.rank_range
    add_blobs(s, {e.digest: e.size for e in manifest.files})
    row = V(
        adapter_id=adapter.id, version=number, content_digest=manifest.content_digest,
        base_model_id=base.id if base else None, base_model_hint=f.base_model_hint, peft_type=f.peft_type,
        task_type=f.task_type, rank=f.rank, min_rank=min_rank, max_rank=max_rank, alpha=f.alpha,
        rank_pattern=f.rank_pattern, alpha_pattern=f.alpha_pattern,
        target_modules=f.target_modules if not f.target_regex else [f.target_regex], use_dora=f.use_dora,
        use_rslora=f.use_rslora, modules_to_save=f.modules_to_save, bias=f.bias, init_method=f.init_method,
        adapter_dtype=manifest.adapter_dtype, param_count=manifest.param_count, size_bytes=manifest.size_bytes,
        description=description, config=manifest.conf, training=manifest.training, compat=compat,
        compat_status=(compat or {}).get("status", "unknown"), created_by=actor,
    )
    row.files = [M.VersionFile(path=e.path, digest=e.digest, size=e.size, role=e.role) for e in manifest.files]
    s.add(row)
    s.flush()
    set_target_modules(s, row, base)
    for k, v in sorted(tags.items()):
        s.add(M.Tag(version_id=row.id, key=k, value=v))
    record(s, actor, "version.create", f"{name}@{number}", {"digest": manifest.content_digest,
                                                              "base": base.fingerprint if base else None})
    return adapter, row, True


def set_target_modules(s: Session, row: M.AdapterVersion, base: M.BaseModelRow | None) -> bool:
    """(Re)write the version's target-module rows: leaf names, "all-linear" and a regex expanded
    against `base`'s layout (as saved without a base). Returns whether they are resolved to module
    names. Called when a version is created and when its base changes (set_base)."""
    conf = row.config or {}
    saved = conf.get("target_modules", row.target_modules or None)
    names, resolved = leaf_targets(saved, base.layout if base is not None else None, task_type=row.task_type,
                                   exclude_modules=conf.get("exclude_modules"))
    s.execute(delete(M.VersionTargetModule).where(M.VersionTargetModule.version_id == row.id))
    if names:
        s.add_all([M.VersionTargetModule(version_id=row.id, module=m) for m in names])
    return resolved


def add_eval(s: Session, row: M.AdapterVersion, *, ref: str, metric: str, value: float, dataset: str | None,
             split: str | None, source: str, details: dict[str, Any] | None, actor: str) -> M.EvalResult:
    """Record an evaluation and make it the version's current value of that metric."""
    return add_evals(s, row, ref=ref, metrics=[(metric, value)], dataset=dataset, split=split, source=source,
                     details=details, actor=actor)[0]


def add_evals(s: Session, row: M.AdapterVersion, *, ref: str, metrics: list[tuple[str, float]],
              dataset: str | None, split: str | None, source: str, details: dict[str, Any] | None,
              actor: str) -> list[M.EvalResult]:
    """Record one evaluation of many metrics: a row each, each the version's current value of its metric.

    One SELECT for the current values and one flush for everything (batched INSERTs), instead of
    a lookup and a flush per metric: 1,000 metrics take milliseconds of the write lock, not seconds.
    Each metric still gets its own audit entry and event, as one at a time did. A metric named
    twice ends with its last value.
    """
    lock_version(s, row)
    evs = []
    for metric, value in metrics:
        evs.append(M.EvalResult(version_id=row.id, metric=metric, value=value, dataset=dataset, split=split,
                                source=source, details=details, created_by=actor))
        record(s, actor, "eval.add", ref, {"metric": metric, "value": value, "dataset": dataset, "split": split})
    _set_current(s, row, metrics)
    s.add_all(evs)
    s.flush()
    return evs


def add_lm_evals(s: Session, row: M.AdapterVersion, *, ref: str, metrics: list[LmEvalMetric],
                 actor: str) -> list[M.EvalResult]:
    """Record an lm-eval import: one row per (task, metric, filter, n-shot), under its full name.

    Then every name of the scheme (registry/evals.py `names`) gets the current value of the
    identity it stands for, taken over all the version's lm-eval rows (the newest row of each full
    name), so a 0-shot import after a 5-shot one adds `@0shot` names and leaves the plain names on
    the default n-shot (the highest), whatever the order of the imports. Only the names this import
    changes are written (a new name, a new value of its identity, or a default that moved to
    another identity): a value recorded by hand under a scheme name stays until then.

    The version row is locked first (`lock_version`), so two imports of one version run one after
    the other and each sees the other's rows.
    """
    lock_version(s, row)
    before = _lm_eval_values(s, row)
    evs = [M.EvalResult(version_id=row.id, metric=m.name, value=m.value, dataset=_dataset(m), split=_split(m),
                        source="lm-eval", details=m.details, created_by=actor, task=m.task, base_metric=m.metric,
                        filter_name=m.filter, n_shot=m.n_shot, stderr=m.stderr, higher_is_better=m.higher_is_better)
           for m in metrics]
    for m in metrics:
        record(s, actor, "eval.add", ref, {"metric": m.name, "value": m.value, "stderr": m.stderr})
    s.add_all(evs)
    s.flush()
    after = _lm_eval_values(s, row)
    was = names(before)
    _set_current(s, row, [(name, after[ident]) for name, ident in names(after).items()
                          if was.get(name) != ident or before.get(ident) != after[ident]])
    return evs


def _lm_eval_values(s: Session, row: M.AdapterVersion) -> dict[Identity, float]:
    """The current value of each lm-eval identity of the version (the newest row of each full name)."""
    E = M.EvalResult
    latest: dict[str, tuple[Identity, float]] = {}
    for metric, task, base, filt, shot, value in s.execute(
            select(E.metric, E.task, E.base_metric, E.filter_name, E.n_shot, E.value)
            .where(E.version_id == row.id, E.task.is_not(None), E.base_metric.is_not(None)).order_by(E.id)):
        latest[metric] = ((task or "", base or "", filt or "none", shot), value)
    return dict(latest.values())


def _dataset(m: LmEvalMetric) -> str | None:
    cfg = m.details.get("task_config") or {}
    path = cfg.get("dataset_path")
    return None if not isinstance(path, str) else "/".join(
        p for p in (path, cfg.get("dataset_name")) if isinstance(p, str))[:200]


def _split(m: LmEvalMetric) -> str | None:
    split = (m.details.get("task_config") or {}).get("test_split")
    return split[:100] if isinstance(split, str) else None


def _set_current(s: Session, row: M.AdapterVersion, metrics: list[tuple[str, float]]) -> None:
    """Make each value the version's current value of its metric (metric_values, the search index).

    One upsert (ON CONFLICT DO UPDATE), so a row another transaction inserted meanwhile is updated, not
    a primary-key error; a metric named twice ends with its last value."""
    rows = [{"version_id": row.id, "metric": m, "value": v, "base_model_id": row.base_model_id, "rank": row.rank,
             "deprecated": row.deprecated} for m, v in sorted(dict(metrics).items())]
    for i in range(0, len(rows), 500):  # 6 parameters a row: well under SQLite's 32,766
        upsert(s, M.MetricValue, rows[i:i + 500], ["version_id", "metric"], ["value"])


def set_deprecated(s: Session, row: M.AdapterVersion, deprecated: bool) -> None:
    """Keep the denormalised flag in metric_values in step with the version."""
    row.deprecated = deprecated
    s.execute(update(M.MetricValue).where(M.MetricValue.version_id == row.id).values(deprecated=deprecated))
