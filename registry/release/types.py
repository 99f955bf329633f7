"""Frozen result types of release management (aliases, gates, impact, bulk, serving, gc, events).

All have `to_dict()` (the JSON shape of `--json` and of the HTTP API and its pages).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from registry import types as T


@dataclass(frozen=True)
class Gate(T._Result):
    """One promotion gate and how a version fared against it."""

    kind: str  # verified | metric | not_deprecated
    expr: str  # "verified against llama@r2", "mmlu>=0.62", "not deprecated"
    passed: bool
    detail: str  # why it passed or failed, in words


@dataclass(frozen=True)
class PolicyResult(T._Result):
    """A version evaluated against an alias's promotion policy."""

    ref: str
    alias: str
    protected: bool
    allowed: bool
    gates: tuple[Gate, ...] = ()
    violations: tuple[str, ...] = ()  # the details of the failing gates, in gate order

    def __post_init__(self) -> None:
        object.__setattr__(self, "violations", tuple(g.detail for g in self.gates if not g.passed))


@dataclass(frozen=True)
class AliasPolicy(T._Result):
    name: str
    alias: str
    require_verified: bool
    require_metrics: tuple[str, ...]
    created_at: dt.datetime
    created_by: str
    current: PolicyResult | None = None  # the version the alias points to now, evaluated
    require_verified_engines: tuple[str, ...] = ()  # serving engines it must also be verified on (vllm, llama.cpp)


@dataclass(frozen=True)
class AliasInfo(T._Result):
    """An alias and where it points."""

    name: str
    alias: str
    version: int | None  # None: a protected alias that points nowhere yet
    updated_at: dt.datetime
    updated_by: str
    protected: bool
    policy: AliasPolicy | None = None


@dataclass(frozen=True)
class AliasMove(T.AliasMove):
    """One entry of an alias's history (T.AliasMove plus its id and the gates a forced move broke)."""

    id: int = 0
    violations: tuple[str, ...] = ()


@dataclass(frozen=True)
class AliasChange(T._Result):
    """What `set_alias` / `remove_alias` did."""

    name: str
    alias: str
    from_version: int | None
    to_version: int | None
    changed: bool  # False: the alias already pointed there
    overridden: bool
    policy: PolicyResult | None = None


@dataclass(frozen=True)
class DeleteResult(T._Result):
    ref: str
    content_digest: str
    aliases_removed: tuple[str, ...]
    merged_removed: int
    publications_removed: int
    forced: bool


@dataclass(frozen=True)
class ImpactedVersion(T._Result):
    ref: str
    content_digest: str
    base: T.BaseRef | None  # the revision it was registered against
    verified_against: tuple[str, ...]  # revisions with a passed verification
    aliases: tuple[str, ...]
    reason: str


@dataclass(frozen=True)
class ImpactedMerge(T._Result):
    id: int
    ref: str
    base: T.BaseRef
    dtype: str
    manifest_digest: str


@dataclass(frozen=True)
class ImpactReport(T._Result):
    """What a new base revision leaves unverified."""

    base: T.BaseRef  # the new revision
    previous: tuple[T.BaseRef, ...]
    versions: tuple[ImpactedVersion, ...]
    aliases: tuple[str, ...]  # NAME@ALIAS -> version, as "name@alias=N"
    merged: tuple[ImpactedMerge, ...]
    jobs: tuple[int, ...] = ()  # re-verification jobs enqueued (or already queued)


@dataclass(frozen=True)
class BulkItem(T._Result):
    ref: str
    action: str  # what happened to it: tagged, deprecated, enqueued, promoted, unchanged, skipped
    detail: str = ""


@dataclass(frozen=True)
class BulkResult(T._Result):
    operation: str
    query: dict[str, Any]
    matched: int
    items: tuple[BulkItem, ...]
    dry_run: bool
    jobs: tuple[int, ...] = ()

    @property
    def changed(self) -> int:
        return sum(1 for i in self.items if i.action not in ("unchanged", "skipped"))


@dataclass(frozen=True)
class ServedAdapter(T._Result):
    name: str  # the LoRA name vLLM serves it under
    ref: str
    rank: int
    target_modules: tuple[str, ...]
    adapter_dtype: str | None
    path: str


@dataclass(frozen=True)
class ServingProfile(T._Result):
    """What `vllm serve` needs to serve a base model's aliased adapters together."""

    base: T.BaseRef
    base_path: str
    alias: str
    adapters: tuple[ServedAdapter, ...]
    max_lora_rank: int
    max_loras: int
    lora_dtype: str  # auto | float16 | bfloat16
    target_modules: tuple[str, ...]
    adapter_dtypes: tuple[str, ...]
    flags: tuple[str, ...]
    command: str
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class GcReport(T._Result):
    dry_run: bool
    grace_seconds: float
    scanned: int  # blobs in the store
    referenced: int
    deleted: tuple[str, ...]  # digests deleted (or that would be, with dry_run)
    bytes_freed: int
    kept_young: int  # unreferenced but inside the grace period (or first seen now)
    missing: tuple[str, ...] = ()  # referenced but not in the store: a damaged catalog


@dataclass(frozen=True)
class WebhookInfo(T._Result):
    id: int
    url: str
    kinds: tuple[str, ...]
    active: bool
    last_event_id: int
    failures: int
    last_error: str | None
    last_attempt_at: dt.datetime | None
    created_at: dt.datetime
    secret: str | None = field(default=None, repr=False)  # only when just created


@dataclass(frozen=True)
class Delivery(T._Result):
    webhook_id: int
    url: str
    delivered: int  # events delivered in this run
    last_event_id: int
    attempts: int
    error: str | None = None
