"""ORM rows -> frozen result types."""

from __future__ import annotations

from typing import Any, overload

from registry import types as T
from registry.catalog import models as M


@overload
def base_ref(row: M.BaseModelRow) -> T.BaseRef: ...
@overload
def base_ref(row: M.BaseModelRow | None) -> T.BaseRef | None: ...
def base_ref(row: M.BaseModelRow | None) -> T.BaseRef | None:
    return None if row is None else T.BaseRef(row.name, row.revision, row.fingerprint)


def base_label(row: M.BaseModelRow) -> str:
    """How messages name a base: NAME@REVISION, or NAME@<fingerprint prefix> when it has no revision."""
    return f"{row.name}@{row.revision or row.fingerprint[:12]}"


def base_model(row: M.BaseModelRow, *, created: bool = False) -> T.BaseModel:
    return T.BaseModel(
        name=row.name, revision=row.revision, fingerprint=row.fingerprint, architecture=row.architecture,
        model_type=row.model_type, dtype=row.dtype, vocab_size=row.vocab_size, hidden_size=row.hidden_size,
        num_layers=row.num_layers, tie_word_embeddings=row.tie_word_embeddings, param_count=row.param_count,
        total_size=row.total_size, location=row.location, weights_stored=row.weights_stored,
        config_hash=row.config_hash, layout_hash=row.layout_hash, tokenizer_hash=row.tokenizer_hash,
        created_at=row.created_at, created_by=row.created_by, created=created,
        hub_id=row.hub_id, card=dict(row.card or {}),
    )


def version(row: M.AdapterVersion, *, name: str, base: M.BaseModelRow | None, tags: dict[str, str],
            aliases: tuple[str, ...], metrics: dict[str, float], successor: str | None = None,
            created: bool = False, **detail: Any) -> T.AdapterVersion:
    return T.AdapterVersion(
        name=name, version=row.version, content_digest=row.content_digest, base=base_ref(base),
        base_model_hint=row.base_model_hint, peft_type=row.peft_type, task_type=row.task_type, rank=row.rank,
        alpha=row.alpha, rank_pattern=dict(row.rank_pattern or {}), alpha_pattern=dict(row.alpha_pattern or {}),
        target_modules=tuple(row.target_modules or ()), use_dora=row.use_dora, use_rslora=row.use_rslora,
        modules_to_save=tuple(row.modules_to_save or ()), bias=row.bias, init_method=row.init_method,
        adapter_dtype=row.adapter_dtype, param_count=row.param_count, size_bytes=row.size_bytes,
        description=row.description, tags=tags, aliases=aliases, metrics=metrics,
        compat_status=row.compat_status, deprecated=row.deprecated, deprecation_reason=row.deprecation_reason,
        successor=successor, created_at=row.created_at, created_by=row.created_by, created=created,
        engines=engine_support(row, base), min_rank=row.min_rank, max_rank=row.max_rank, **detail,
    )


def engine_support(row: M.AdapterVersion, base: M.BaseModelRow | None) -> tuple[T.EngineSupport, ...]:
    """Each serving engine's preflight verdict on the version (its config and its base's architecture)."""
    config = row.config or {"peft_type": row.peft_type}
    architecture = base.architecture if base else None
    tie = bool(base.tie_word_embeddings) if base else False
    # The verdict is a pure function of these three (registry/engines/preflight), and a search page
    # asks it for every version: remember it by the config's text (its repr: the values of a JSON
    # column, key order included as the rules see it) instead of running every rule again.
    key = (repr(config), architecture, tie)
    found = _ENGINES.get(key)
    if found is None:
        from registry.engines import preflight

        found = preflight.check_all(preflight.Facts(config, architecture=architecture, tie_word_embeddings=tie))
        if len(_ENGINES) >= 4096:  # bounded: a catalog has far fewer distinct configs than versions
            _ENGINES.clear()
        _ENGINES[key] = found
    return found


_ENGINES: dict[tuple[str, str | None, bool], tuple[T.EngineSupport, ...]] = {}


def eval_result(row: M.EvalResult, ref: str) -> T.EvalResult:
    return T.EvalResult(ref, row.metric, row.value, row.dataset, row.split, row.source, row.created_at,
                        row.created_by, row.details, task=row.task, base_metric=row.base_metric,
                        filter_name=row.filter_name, n_shot=row.n_shot, stderr=row.stderr,
                        higher_is_better=row.higher_is_better)


def alias_move(row: M.AliasHistory, name: str) -> T.AliasMove:
    return T.AliasMove(name, row.alias, row.from_version, row.to_version, row.actor, row.reason, row.overridden,
                       row.at)


def verification(row: M.Verification, ref: str, base: M.BaseModelRow) -> T.Verification:
    return T.Verification(ref, base_ref(base), row.passed, row.device_kind, row.dtype, dict(row.figures or {}),
                          dict(row.versions or {}), row.duration_s, row.created_at, row.engine or "peft",
                          row.engine_version)


def merged(row: M.MergedArtifact, ref: str, base: M.BaseModelRow, **extra: Any) -> T.MergedArtifact:
    return T.MergedArtifact(row.id, ref, base_ref(base), row.dtype, row.engine, row.engine_version, row.device,
                            row.manifest_digest, row.size_bytes, dict(row.files or {}), dict(row.validation or {}),
                            row.created_at, **extra)


def publication(row: M.Publication, ref: str) -> T.Publication:
    return T.Publication(ref, row.target, row.uri, row.revision, row.manifest_digest, row.forced, row.actor, row.at)


def job(row: M.Job, *, created: bool = False) -> T.Job:
    return T.Job(
        id=row.id, kind=row.kind, state=row.state, payload=dict(row.payload or {}), priority=row.priority,
        attempt=row.attempt, max_attempts=row.max_attempts, run_after=row.run_after, worker_id=row.worker_id,
        error=row.error, errors=tuple(row.errors or ()), result=row.result, progress=row.progress,
        unique_key=row.unique_key, cancel_requested=row.cancel_requested, created_at=row.created_at,
        started_at=row.started_at, finished_at=row.finished_at, created_by=row.created_by, created=created,
    )


def worker(row: M.Worker) -> T.WorkerInfo:
    return T.WorkerInfo(row.id, row.host, row.pid, row.device, row.gpu_name, row.gpu_memory, tuple(row.kinds or ()),
                        dict(row.versions or {}), row.state, row.current_job_id, row.started_at, row.last_seen)
