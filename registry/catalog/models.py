"""The catalog's tables (SQLAlchemy 2 typed models).

Migrations in migrations/versions must produce exactly this schema; a test runs `alembic check`.
JSON columns hold what is read back whole (configs, figures); what is filtered on gets a typed,
indexed column, sometimes denormalised on purpose (see MetricValue).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapped, mapped_column, relationship

from registry.db import Base


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite hands back naive ones otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=dt.timezone.utc)
        return value


Json = JSON().with_variant(JSON(), "postgresql")
TS = UTCDateTime()


class BaseModelRow(Base):
    """A base model, identified by its fingerprint, not by a name string."""

    __tablename__ = "base_models"
    __table_args__ = (UniqueConstraint("name", "fingerprint"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    revision: Mapped[str | None] = mapped_column(String(200))
    fingerprint: Mapped[str] = mapped_column(String(64), index=True)
    architecture: Mapped[str] = mapped_column(String(200))
    model_type: Mapped[str | None] = mapped_column(String(100))
    config_hash: Mapped[str] = mapped_column(String(64))
    layout_hash: Mapped[str] = mapped_column(String(64), index=True)
    tokenizer_hash: Mapped[str | None] = mapped_column(String(64))
    vocab_size: Mapped[int | None] = mapped_column(Integer)
    hidden_size: Mapped[int | None] = mapped_column(Integer)
    num_layers: Mapped[int | None] = mapped_column(Integer)
    dtype: Mapped[str | None] = mapped_column(String(20))
    tie_word_embeddings: Mapped[bool] = mapped_column(Boolean, default=False)
    param_count: Mapped[int] = mapped_column(BigInteger, default=0)
    total_size: Mapped[int] = mapped_column(BigInteger, default=0)
    location: Mapped[str] = mapped_column(Text)
    weights_stored: Mapped[bool] = mapped_column(Boolean, default=False)
    layout: Mapped[dict[str, Any]] = mapped_column(Json)  # tensor name -> [shape, dtype]
    config: Mapped[dict[str, Any]] = mapped_column(Json)
    files: Mapped[dict[str, Any]] = mapped_column(Json)  # relpath -> {digest?, size}
    created_at: Mapped[dt.datetime] = mapped_column(TS, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200), default="")
    # Hub identity (migration 0004): the Hub repo id with its casing (revision holds the commit when
    # known), and what the base's own model card says (license, pipeline_tag, tags, library_name, ...)
    hub_id: Mapped[str | None] = mapped_column(String(200), index=True)
    card: Mapped[dict[str, Any]] = mapped_column(Json, default=dict, server_default="{}")


class Blob(Base):
    """A blob in the artifact store, known to the catalog (gc works from here)."""

    __tablename__ = "blobs"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[dt.datetime] = mapped_column(TS, default=utcnow)


class Adapter(Base):
    __tablename__ = "adapters"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    namespace: Mapped[str] = mapped_column(String(100), index=True, default="")
    description: Mapped[str] = mapped_column(Text, default="")
    latest_version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(TS, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200), default="")

    versions: Mapped[list[AdapterVersion]] = relationship(back_populates="adapter")


class AdapterVersion(Base):
    """One immutable version of an adapter, with its PEFT fields as typed, indexed columns."""

    __tablename__ = "adapter_versions"
    __table_args__ = (
        UniqueConstraint("adapter_id", "version"),
        UniqueConstraint("adapter_id", "content_digest"),
        Index("ix_adapter_versions_base_rank", "base_model_id", "rank"),
        # "newest N of a base": an index walk backwards; covering on PostgreSQL, whose planner
        # otherwise prefers scanning the primary key (24 ms vs 0.06 ms, docs/BENCHMARKS.md).
        Index("ix_adapter_versions_base_id", "base_model_id", "id",
              postgresql_include=["rank", "min_rank", "max_rank", "deprecated"]),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    adapter_id: Mapped[int] = mapped_column(ForeignKey("adapters.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    content_digest: Mapped[str] = mapped_column(String(64), index=True)
    base_model_id: Mapped[int | None] = mapped_column(ForeignKey("base_models.id"))
    base_model_hint: Mapped[str | None] = mapped_column(Text)  # base_model_name_or_path of the config
    peft_type: Mapped[str] = mapped_column(String(50), index=True)
    task_type: Mapped[str | None] = mapped_column(String(50))
    rank: Mapped[int | None] = mapped_column(Integer, index=True)
    # the smallest and largest rank any module has (rank and rank_pattern together; migration 0004)
    min_rank: Mapped[int | None] = mapped_column(Integer, index=True)
    max_rank: Mapped[int | None] = mapped_column(Integer, index=True)
    alpha: Mapped[float | None] = mapped_column(Float)
    rank_pattern: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    alpha_pattern: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    target_modules: Mapped[list[str]] = mapped_column(Json, default=list)
    use_dora: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    use_rslora: Mapped[bool] = mapped_column(Boolean, default=False)
    modules_to_save: Mapped[list[str]] = mapped_column(Json, default=list)
    bias: Mapped[str | None] = mapped_column(String(20))
    init_method: Mapped[str | None] = mapped_column(String(50))
    adapter_dtype: Mapped[str | None] = mapped_column(String(20), index=True)
    param_count: Mapped[int] = mapped_column(BigInteger, default=0)
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    description: Mapped[str] = mapped_column(Text, default="")
    config: Mapped[dict[str, Any]] = mapped_column(Json)
    training: Mapped[dict[str, Any] | None] = mapped_column(Json)
    compat: Mapped[dict[str, Any] | None] = mapped_column(Json)
    compat_status: Mapped[str | None] = mapped_column(String(20))  # ok | warn | fail | unknown
    deprecated: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    deprecation_reason: Mapped[str | None] = mapped_column(Text)
    successor_id: Mapped[int | None] = mapped_column(ForeignKey("adapter_versions.id"))
    created_at: Mapped[dt.datetime] = mapped_column(TS, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200), default="")

    adapter: Mapped[Adapter] = relationship(back_populates="versions")
    files: Mapped[list[VersionFile]] = relationship(cascade="all, delete-orphan", order_by="VersionFile.path")
    base_model: Mapped[BaseModelRow | None] = relationship()


class VersionFile(Base):
    __tablename__ = "version_files"

    version_id: Mapped[int] = mapped_column(ForeignKey("adapter_versions.id", ondelete="CASCADE"), primary_key=True)
    path: Mapped[str] = mapped_column(String(500), primary_key=True)
    digest: Mapped[str] = mapped_column(ForeignKey("blobs.digest"), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    role: Mapped[str] = mapped_column(String(20))  # config | weights | tokenizer | training | other


class VersionTargetModule(Base):
    """target_modules as rows, so `--target-module M` is an indexed set query: normalised to leaf
    module names (q_proj, not model.layers.0.self_attn.q_proj) and, for "all-linear", expanded to
    the base's linear modules. The version's target_modules column keeps them as saved."""

    __tablename__ = "version_target_modules"
    __table_args__ = (Index("ix_version_target_modules_module", "module", "version_id"),)

    version_id: Mapped[int] = mapped_column(ForeignKey("adapter_versions.id", ondelete="CASCADE"), primary_key=True)
    module: Mapped[str] = mapped_column(String(200), primary_key=True)


class Tag(Base):
    __tablename__ = "tags"
    __table_args__ = (Index("ix_tags_key_value", "key", "value"),)

    version_id: Mapped[int] = mapped_column(ForeignKey("adapter_versions.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    value: Mapped[str] = mapped_column(String(500))


class EvalResult(Base):
    """Every evaluation ever recorded (the history)."""

    __tablename__ = "eval_results"
    __table_args__ = (Index("ix_eval_results_version_metric", "version_id", "metric"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("adapter_versions.id", ondelete="CASCADE"))
    metric: Mapped[str] = mapped_column(String(200))  # the registry's name for it (docs/JSON.md, evals)
    value: Mapped[float] = mapped_column(Float)
    dataset: Mapped[str | None] = mapped_column(String(200))
    split: Mapped[str | None] = mapped_column(String(100))
    source: Mapped[str] = mapped_column(String(50), default="manual")
    details: Mapped[dict[str, Any] | None] = mapped_column(Json)
    # a metric's identity as lm-eval writes it (migration 0004): task, metric, filter, n-shot
    task: Mapped[str | None] = mapped_column(String(200))
    base_metric: Mapped[str | None] = mapped_column(String(200))
    filter_name: Mapped[str | None] = mapped_column(String(100))
    n_shot: Mapped[int | None] = mapped_column(Integer)
    stderr: Mapped[float | None] = mapped_column(Float)
    higher_is_better: Mapped[bool | None] = mapped_column(Boolean)
    created_at: Mapped[dt.datetime] = mapped_column(TS, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200), default="")


class MetricValue(Base):
    """The current value of each metric of each version, denormalised for search.

    Carrying base_model_id, rank and deprecated lets "base X, rank <= 16, acc >= 0.6, best first"
    walk one index in value order instead of joining three tables.
    """

    __tablename__ = "metric_values"
    __table_args__ = (Index("ix_metric_values_search", "metric", "base_model_id", "value", "version_id",
                            postgresql_include=["rank", "deprecated"]),)

    version_id: Mapped[int] = mapped_column(ForeignKey("adapter_versions.id", ondelete="CASCADE"), primary_key=True)
    metric: Mapped[str] = mapped_column(String(200), primary_key=True)
    value: Mapped[float] = mapped_column(Float)
    base_model_id: Mapped[int | None] = mapped_column(Integer)
    rank: Mapped[int | None] = mapped_column(Integer)
    deprecated: Mapped[bool] = mapped_column(Boolean, default=False)


class Alias(Base):
    __tablename__ = "aliases"

    adapter_id: Mapped[int] = mapped_column(ForeignKey("adapters.id", ondelete="CASCADE"), primary_key=True)
    alias: Mapped[str] = mapped_column(String(100), primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("adapter_versions.id"), index=True)
    updated_at: Mapped[dt.datetime] = mapped_column(TS, default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(200), default="")


class AliasHistory(Base):
    __tablename__ = "alias_history"
    __table_args__ = (Index("ix_alias_history_adapter_alias", "adapter_id", "alias", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    adapter_id: Mapped[int] = mapped_column(ForeignKey("adapters.id", ondelete="CASCADE"))
    alias: Mapped[str] = mapped_column(String(100))
    from_version: Mapped[int | None] = mapped_column(Integer)
    to_version: Mapped[int | None] = mapped_column(Integer)  # None: removed
    actor: Mapped[str] = mapped_column(String(200), default="")
    reason: Mapped[str | None] = mapped_column(Text)
    overridden: Mapped[bool] = mapped_column(Boolean, default=False)
    violations: Mapped[list[str]] = mapped_column(Json, default=list)  # the gates a forced move broke
    at: Mapped[dt.datetime] = mapped_column(TS, default=utcnow)


class AliasPolicy(Base):
    """A protected alias and its promotion gates."""

    __tablename__ = "alias_policies"

    adapter_id: Mapped[int] = mapped_column(ForeignKey("adapters.id", ondelete="CASCADE"), primary_key=True)
    alias: Mapped[str] = mapped_column(String(100), primary_key=True)
    require_verified: Mapped[bool] = mapped_column(Boolean, default=False)
    require_metrics: Mapped[list[str]] = mapped_column(Json, default=list)  # ["mmlu>=0.62", ...]
    # serving engines a version must also be verified on (release/policy.py), e.g. ["vllm"]
    require_verified_engines: Mapped[list[str]] = mapped_column(Json, default=list, server_default="[]")
    created_at: Mapped[dt.datetime] = mapped_column(TS, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200), default="")


class AuditEntry(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(TS, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(100), index=True)
    target: Mapped[str] = mapped_column(String(500))
    details: Mapped[dict[str, Any] | None] = mapped_column(Json)


class Event(Base):
    """The outbox: every catalog change, in order, for `events --follow` and webhooks."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(TS, default=utcnow)
    kind: Mapped[str] = mapped_column(String(100), index=True)
    subject: Mapped[str] = mapped_column(String(500))
    payload: Mapped[dict[str, Any]] = mapped_column(Json)


class Webhook(Base):
    __tablename__ = "webhooks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    secret: Mapped[str] = mapped_column(String(200))
    kinds: Mapped[list[str]] = mapped_column(Json, default=list)
    last_event_id: Mapped[int] = mapped_column(Integer, default=0)  # delivered up to here (at least once)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)  # consecutive failed deliveries
    last_error: Mapped[str | None] = mapped_column(Text)
    last_attempt_at: Mapped[dt.datetime | None] = mapped_column(TS)
    created_at: Mapped[dt.datetime] = mapped_column(TS, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200), default="")


class Job(Base):
    """A durable job. State transitions (all guarded by `attempt` where a worker finishes):

    queued    -> running    claim: one statement (FOR UPDATE SKIP LOCKED / BEGIN IMMEDIATE), attempt += 1
    running   -> succeeded  finish by the worker holding the current attempt
    running   -> queued     failure with attempts left (run_after = backoff), lease expired (rescue),
                            or graceful worker stop (hand back)
    running   -> failed     failure with no attempts left, or rescue after max attempts
    queued    -> cancelled  cancel before a worker takes it
    running   -> cancelled  the worker saw cancel_requested and stopped
    failed/cancelled -> queued   manual retry (max_attempts raised by one when exhausted)
    """

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_claim", "state", "priority", "run_after", "id"),
        Index("ix_jobs_unique_active", "unique_key", unique=True,
              sqlite_where=text("state IN ('queued', 'running')"),
              postgresql_where=text("state IN ('queued', 'running')")),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(50), index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(Json)
    state: Mapped[str] = mapped_column(String(20), default="queued")
    priority: Mapped[int] = mapped_column(Integer, default=0)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    run_after: Mapped[dt.datetime] = mapped_column(TS, default=utcnow)
    lease_expires_at: Mapped[dt.datetime | None] = mapped_column(TS)
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(TS)
    worker_id: Mapped[str | None] = mapped_column(String(200))
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    progress: Mapped[dict[str, Any] | None] = mapped_column(Json)
    error: Mapped[str | None] = mapped_column(Text)
    errors: Mapped[list[dict[str, Any]]] = mapped_column(Json, default=list)
    result: Mapped[dict[str, Any] | None] = mapped_column(Json)
    unique_key: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[dt.datetime] = mapped_column(TS, default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(TS)
    finished_at: Mapped[dt.datetime | None] = mapped_column(TS)
    created_by: Mapped[str] = mapped_column(String(200), default="")


class Worker(Base):
    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    host: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int] = mapped_column(Integer)
    device: Mapped[str] = mapped_column(String(50))
    gpu_name: Mapped[str | None] = mapped_column(String(200))
    gpu_memory: Mapped[int | None] = mapped_column(BigInteger)
    kinds: Mapped[list[str]] = mapped_column(Json, default=list)
    versions: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    state: Mapped[str] = mapped_column(String(20), default="idle")
    current_job_id: Mapped[int | None] = mapped_column(Integer)
    started_at: Mapped[dt.datetime] = mapped_column(TS, default=utcnow)
    last_seen: Mapped[dt.datetime] = mapped_column(TS, default=utcnow)


class Verification(Base):
    """One verification of a version against a base, by one engine (peft, the reference, or a serving
    engine whose output was compared with peft's: registry/verify/engine.py)."""

    __tablename__ = "verifications"
    __table_args__ = (Index("ix_verifications_version_base", "version_id", "base_model_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("adapter_versions.id", ondelete="CASCADE"))
    base_model_id: Mapped[int] = mapped_column(ForeignKey("base_models.id"))
    device_kind: Mapped[str] = mapped_column(String(50))
    dtype: Mapped[str] = mapped_column(String(20))
    versions: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    passed: Mapped[bool] = mapped_column(Boolean)
    figures: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    duration_s: Mapped[float] = mapped_column(Float, default=0.0)
    job_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(TS, default=utcnow)
    # what ran it: "peft" (rows from before engines are peft's), "vllm", "llama.cpp"; and its version
    engine: Mapped[str] = mapped_column(String(50), default="peft", server_default="peft")
    engine_version: Mapped[str | None] = mapped_column(String(50))


class MergedArtifact(Base):
    """A merged checkpoint, keyed by what decides its bits."""

    __tablename__ = "merged_artifacts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cache_key: Mapped[str] = mapped_column(String(64), unique=True)  # sha256(base fp, adapter digest, dtype, engine)
    version_id: Mapped[int] = mapped_column(ForeignKey("adapter_versions.id", ondelete="CASCADE"), index=True)
    base_model_id: Mapped[int] = mapped_column(ForeignKey("base_models.id"))
    dtype: Mapped[str] = mapped_column(String(20))
    engine: Mapped[str] = mapped_column(String(50))
    engine_version: Mapped[str] = mapped_column(String(50))
    device: Mapped[str] = mapped_column(String(50), default="cpu")
    manifest_digest: Mapped[str] = mapped_column(String(64))
    files: Mapped[dict[str, Any]] = mapped_column(Json)  # relpath -> {digest, size}
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    validation: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(TS, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200), default="")


class Publication(Base):
    __tablename__ = "publications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    merged_id: Mapped[int] = mapped_column(ForeignKey("merged_artifacts.id", ondelete="CASCADE"), index=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("adapter_versions.id", ondelete="CASCADE"), index=True)
    target: Mapped[str] = mapped_column(String(20))  # dir | s3 | hf
    uri: Mapped[str] = mapped_column(Text)
    revision: Mapped[str | None] = mapped_column(String(200))
    manifest_digest: Mapped[str] = mapped_column(String(64))
    forced: Mapped[bool] = mapped_column(Boolean, default=False)
    actor: Mapped[str] = mapped_column(String(200), default="")
    at: Mapped[dt.datetime] = mapped_column(TS, default=utcnow)


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scope: Mapped[str] = mapped_column(String(20))  # read | write | admin
    namespace: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = mapped_column(TS, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200), default="")
    revoked_at: Mapped[dt.datetime | None] = mapped_column(TS)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(TS)


class PublishTarget(Base):
    """Where the writes of a namespace may publish to (kind publish) or register base models from
    (kind base): an admin's policy, never a caller's input. namespace NULL: every namespace."""

    __tablename__ = "publish_targets"
    __table_args__ = (Index("ix_publish_targets_namespace_kind", "namespace", "kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    namespace: Mapped[str | None] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(20))  # publish | base
    url: Mapped[str] = mapped_column(Text)  # dir:///root, s3://bucket/prefix, hf://org
    options: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)  # {"private": bool} for hf
    created_at: Mapped[dt.datetime] = mapped_column(TS, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200), default="")
