"""Frozen result types returned by every public method (never ORM rows or loose dicts).

`to_dict()` gives the stable JSON shape documented in docs/JSON.md (used by `--json` and the API).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_FIELDS: dict[type, tuple[str, ...]] = {}
_SCALARS = (str, int, float, bool, type(None))


def _field_names(t: type) -> tuple[str, ...]:
    names = _FIELDS.get(t)
    if names is None:  # looked up once per class: search pages render many results
        names = _FIELDS[t] = tuple(f.name for f in dataclasses.fields(t))
    return names


def _fields_dict(v: Any) -> dict[str, Any]:
    return {n: _plain(getattr(v, n)) for n in _field_names(type(v))}


def _plain(v: Any) -> Any:
    """JSON-ready form of a value: result types (their own to_dict when they override it),
    dataclasses, containers, datetimes as ISO 8601 in UTC, paths as strings."""
    if type(v) in _SCALARS:
        return v
    if isinstance(v, _Result):
        return v.to_dict()
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return _fields_dict(v)
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, dt.datetime):
        if v.tzinfo is None:
            v = v.replace(tzinfo=dt.timezone.utc)
        return v.isoformat()
    if isinstance(v, Path):
        return str(v)
    return v


class _Result:
    def to_dict(self) -> dict[str, Any]:
        return _fields_dict(self)


@dataclass(frozen=True)
class BaseModel(_Result):
    name: str
    revision: str | None
    fingerprint: str
    architecture: str
    model_type: str | None
    dtype: str | None
    vocab_size: int | None
    hidden_size: int | None
    num_layers: int | None
    tie_word_embeddings: bool
    param_count: int
    total_size: int
    location: str
    weights_stored: bool
    config_hash: str
    layout_hash: str
    tokenizer_hash: str | None
    created_at: dt.datetime
    created_by: str
    created: bool = False  # True when this call registered it
    hub_id: str | None = None  # the Hub repo id, with its casing (revision: its commit, when known)
    card: dict[str, Any] = field(default_factory=dict)  # from the base's model card: license, pipeline_tag, tags

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.revision}" if self.revision else self.name


@dataclass(frozen=True)
class BaseRef(_Result):
    name: str
    revision: str | None
    fingerprint: str


@dataclass(frozen=True)
class FileInfo(_Result):
    path: str
    digest: str
    size: int
    role: str


@dataclass(frozen=True)
class EvalResult(_Result):
    ref: str
    metric: str
    value: float
    dataset: str | None
    split: str | None
    source: str
    created_at: dt.datetime
    created_by: str
    details: dict[str, Any] | None = None
    # identity as lm-eval writes it (None for metrics recorded by hand): docs/JSON.md "Evaluations"
    task: str | None = None
    base_metric: str | None = None
    filter_name: str | None = None
    n_shot: int | None = None
    stderr: float | None = None
    higher_is_better: bool | None = None


@dataclass(frozen=True)
class AliasMove(_Result):
    name: str
    alias: str
    from_version: int | None
    to_version: int | None
    actor: str
    reason: str | None
    overridden: bool
    at: dt.datetime


@dataclass(frozen=True)
class Verification(_Result):
    ref: str
    base: BaseRef
    passed: bool
    device_kind: str
    dtype: str
    figures: dict[str, Any]
    versions: dict[str, Any]
    duration_s: float
    created_at: dt.datetime
    engine: str = "peft"  # what ran it: peft (the reference), vllm, llama.cpp
    engine_version: str | None = None


@dataclass(frozen=True)
class EngineSupport(_Result):
    """Would a serving engine take this adapter (registry/engines/preflight/): its rules, no engine run."""

    engine: str  # vllm, llama.cpp
    version: str  # the engine version the rules were read from (registry/engines/versions.py)
    ok: bool
    reasons: tuple[str, ...] = ()  # each "RULE-ID: what in this adapter breaks it"
    fix: str | None = None  # what to do instead, e.g. serve it merged


@dataclass(frozen=True)
class Export(_Result):
    """An adapter version converted for an engine (`export --format gguf`), recorded with its digest."""

    ref: str
    base: BaseRef
    format: str  # gguf
    type: str  # f32 | f16 | bf16 | q8_0 (the converter's --outtype)
    merged: bool  # True: the merged model; False: a LoRA adapter file for the base's own GGUF
    converter: str  # the engine whose converter made it (llama.cpp)
    converter_version: str  # its pinned version
    digest: str  # sha256 of the file
    size_bytes: int
    path: Path  # the file written
    seconds: float


@dataclass(frozen=True)
class MergedArtifact(_Result):
    id: int
    ref: str
    base: BaseRef
    dtype: str
    engine: str
    engine_version: str
    device: str
    manifest_digest: str
    size_bytes: int
    files: dict[str, Any]
    validation: dict[str, Any]
    created_at: dt.datetime
    path: Path | None = None  # local folder when materialised
    created: bool = False


@dataclass(frozen=True)
class Publication(_Result):
    ref: str
    target: str
    uri: str
    revision: str | None
    manifest_digest: str
    forced: bool
    actor: str
    at: dt.datetime


@dataclass(frozen=True)
class AdapterVersion(_Result):
    """One adapter version. `show` fills the detail fields; `search` leaves them empty."""

    name: str
    version: int
    content_digest: str
    base: BaseRef | None
    base_model_hint: str | None
    peft_type: str
    task_type: str | None
    rank: int | None
    alpha: float | None
    rank_pattern: dict[str, int]
    alpha_pattern: dict[str, float]
    target_modules: tuple[str, ...]
    use_dora: bool
    use_rslora: bool
    modules_to_save: tuple[str, ...]
    bias: str | None
    init_method: str | None
    adapter_dtype: str | None
    param_count: int
    size_bytes: int
    description: str
    tags: dict[str, str]
    aliases: tuple[str, ...]
    metrics: dict[str, float]
    compat_status: str | None
    deprecated: bool
    deprecation_reason: str | None
    successor: str | None
    created_at: dt.datetime
    created_by: str
    created: bool = False
    # which serving engines take it, by their preflight rules (from the config and the base)
    engines: tuple[EngineSupport, ...] = ()
    # the smallest and largest rank any module has (rank with rank_pattern)
    min_rank: int | None = None
    max_rank: int | None = None
    # target modules as leaf names, what `--target-module` matches ("all-linear" and a regex expanded
    # against the base; with no base recorded, the saved form alone)
    target_module_names: tuple[str, ...] = ()
    # push only: why no base was recorded when the config names several registered bases (else None)
    base_note: str | None = None
    # detail (show)
    files: tuple[FileInfo, ...] = ()
    compat: dict[str, Any] | None = None
    training: dict[str, Any] | None = None
    config: dict[str, Any] | None = None
    evals: tuple[EvalResult, ...] = ()
    verifications: tuple[Verification, ...] = ()
    merged: tuple[MergedArtifact, ...] = ()
    publications: tuple[Publication, ...] = ()

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


@dataclass(frozen=True)
class Adapter(_Result):
    name: str
    description: str
    latest_version: int
    aliases: dict[str, int]
    created_at: dt.datetime
    created_by: str
    versions: tuple[AdapterVersion, ...] = ()


@dataclass(frozen=True)
class PushedAdapter(_Result):
    """One adapter of a multi-adapter folder and the version it became (`Registry.push_all`)."""

    adapter: str  # peft's adapter name: "default" (the folder's root) or its subfolder's name
    folder: str  # where it was read, relative to the pushed folder ("." for the root)
    version: AdapterVersion


@dataclass(frozen=True)
class MultiPush(_Result):
    """Every adapter of a pushed folder, in adapter-name order ("default" first): none is left out."""

    items: tuple[PushedAdapter, ...]


@dataclass(frozen=True)
class SearchPage(_Result):
    items: tuple[AdapterVersion, ...]
    total: int | None
    limit: int
    offset: int


@dataclass(frozen=True)
class CompatReport(_Result):
    ref: str
    base: BaseRef | None
    status: str
    errors: tuple[str, ...]
    warnings: tuple[str, ...]
    modules_touched: int
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Job(_Result):
    id: int
    kind: str
    state: str
    payload: dict[str, Any]
    priority: int
    attempt: int
    max_attempts: int
    run_after: dt.datetime
    worker_id: str | None
    error: str | None
    errors: tuple[dict[str, Any], ...]
    result: dict[str, Any] | None
    progress: dict[str, Any] | None
    unique_key: str | None
    cancel_requested: bool
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    created_by: str
    created: bool = False


@dataclass(frozen=True)
class WorkerInfo(_Result):
    id: str
    host: str
    pid: int
    device: str
    gpu_name: str | None
    gpu_memory: int | None
    kinds: tuple[str, ...]
    versions: dict[str, Any]
    state: str
    current_job_id: int | None
    started_at: dt.datetime
    last_seen: dt.datetime


@dataclass(frozen=True)
class AuditEntry(_Result):
    id: int
    at: dt.datetime
    actor: str
    action: str
    target: str
    details: dict[str, Any] | None


@dataclass(frozen=True)
class EventInfo(_Result):
    id: int
    at: dt.datetime
    kind: str
    subject: str
    payload: dict[str, Any]
