"""Settings: built once at the entry point (CLI, server, worker, tests) and passed down.

Every setting has a name, a default, a help line and an environment variable; the README's
"Configuration" table lists them all and tests/test_docs.py fails when one is missing there.
Nothing here runs at import time.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENV_PREFIX = "ADAPTER_REGISTRY_"


def _meta(help: str, env: str | None = None) -> dict[str, Any]:
    return {"help": help, "env": env}


@dataclass(frozen=True)
class Settings:
    """The registry's configuration. Build with `Settings.from_env(**overrides)`."""

    home: Path = field(
        default=Path("~/.local/share/adapter-registry").expanduser(),
        metadata=_meta("Folder for the default SQLite catalog, blob store and caches.", "HOME"),
    )
    db: str = field(
        default="", metadata=_meta("Catalog database URL (sqlite:///file.db or postgresql+psycopg://...). "
                                   "Default: sqlite file `catalog.db` under home.", "DB"))
    store: str = field(
        default="", metadata=_meta("Artifact store: a folder, file:///folder or s3://bucket/prefix. "
                                   "Default: `store/` under home.", "STORE"))
    s3_endpoint: str | None = field(
        default=None, metadata=_meta("S3 endpoint URL for S3-compatible stores (MinIO, moto, R2).", "S3_ENDPOINT"))
    cache: str = field(
        default="", metadata=_meta("Local cache of resolved adapters and merged models. Default: `cache/` under home.",
                                   "CACHE"))
    actor: str = field(
        default="", metadata=_meta("Who is acting, recorded in the audit log. Default: the OS user.", "ACTOR"))
    allow_pickle: bool = field(
        default=False, metadata=_meta("Accept pickle adapter weights (.bin) by converting them to safetensors with "
                                      "torch's weights-only loader. Off: they can run code when loaded.",
                                      "ALLOW_PICKLE"))
    max_header_bytes: int = field(
        default=100 * 1024 * 1024,
        metadata=_meta("Largest safetensors JSON header accepted, in bytes.", "MAX_HEADER_BYTES"))
    max_upload_bytes: int = field(
        default=20 * 1024**3, metadata=_meta("Largest HTTP upload accepted, in bytes.", "MAX_UPLOAD_BYTES"))
    auto_upgrade: bool = field(
        default=True, metadata=_meta("Create or upgrade an embedded SQLite catalog automatically on first use.",
                                     "AUTO_UPGRADE"))
    remote: str | None = field(
        default=None, metadata=_meta("URL of a registry server; the CLI then works through its HTTP API.", "REMOTE"))
    token: str | None = field(
        default=None, metadata=_meta("Bearer token for the remote registry server.", "TOKEN"))
    open_reads: bool = field(
        default=True, metadata=_meta("Serve reads over HTTP without a token (writes always need one).", "OPEN_READS"))
    limits: bool = field(
        default=True, metadata=_meta("Enforce the HTTP limits below (authentication before the body, body size, "
                                     "concurrency, body timeout). Off only to measure what they cost.", "LIMITS"))
    max_body_bytes: int = field(
        default=1024 * 1024, metadata=_meta("Largest request body of a JSON route, in bytes (413 past it; "
                                            "pushes are limited by max_upload_bytes).", "MAX_BODY_BYTES"))
    max_concurrent_requests: int = field(
        default=64, metadata=_meta("HTTP requests handled at once; more are answered 503 at once (0: no limit; "
                                   "/api/v1/healthz is exempt).", "MAX_CONCURRENT_REQUESTS"))
    max_connections: int = field(
        default=1024, metadata=_meta("Open HTTP connections the server accepts (uvicorn's limit_concurrency: "
                                     "503 past it).", "MAX_CONNECTIONS"))
    body_timeout_s: float = field(
        default=60.0, metadata=_meta("Seconds a request body may stall between two chunks before the request "
                                     "is answered 408.", "BODY_TIMEOUT_S"))
    header_timeout_s: float = field(
        default=30.0, metadata=_meta("Seconds a connection may take to send a request's headers before it is "
                                     "closed.", "HEADER_TIMEOUT_S"))
    keep_alive_s: int = field(
        default=5, metadata=_meta("Seconds an idle keep-alive connection stays open (uvicorn's "
                                  "timeout_keep_alive).", "KEEP_ALIVE_S"))
    max_request_header_bytes: int = field(
        default=16 * 1024, metadata=_meta("Largest request line plus headers, in bytes (h11's max incomplete "
                                          "event size: the connection is refused past it).",
                                          "MAX_REQUEST_HEADER_BYTES"))
    response_cache_bytes: int = field(
        default=64 * 1024 * 1024, metadata=_meta("Memory per server process for answers of search, adapters and "
                                                "versions, reused until the catalog next commits a change (0: off).",
                                                "RESPONSE_CACHE_BYTES"))
    max_metrics_per_eval: int = field(
        default=2000, metadata=_meta("Most metrics one evaluation may record.", "MAX_METRICS_PER_EVAL"))
    temp_max_age_s: float = field(
        default=24 * 3600.0, metadata=_meta("Temp files of pushes, uploads and store writes older than this are "
                                            "removed at server start and by gc, in seconds.", "TEMP_MAX_AGE_S"))
    engines_dir: str = field(
        default="", metadata=_meta("Where the pinned serving-engine environments live (`engines install`): outside "
                                   "any checkout. Default: ~/.cache/adapter-registry/engines.", "ENGINES_DIR"))
    hf_endpoint: str | None = field(
        default=None, metadata=_meta("Hugging Face Hub endpoint for hf:// publishing (default: huggingface_hub's).",
                                     "HF_ENDPOINT"))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from ADAPTER_REGISTRY_* variables, then explicit overrides (None = not given)."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            name = ENV_PREFIX + (f.metadata.get("env") or f.name.upper())
            if name in env and env[name] != "":
                values[f.name] = _coerce(f, env[name])
        values.update({k: v for k, v in overrides.items() if v is not None})
        if "home" in values:
            values["home"] = Path(values["home"]).expanduser()
        return cls(**values)

    @property
    def db_url(self) -> str:
        return self.db or f"sqlite:///{self.home / 'catalog.db'}"

    @property
    def store_url(self) -> str:
        return self.store or str(self.home / "store")

    @property
    def cache_dir(self) -> Path:
        return Path(self.cache).expanduser() if self.cache else self.home / "cache"

    @property
    def actor_name(self) -> str:
        if self.actor:
            return self.actor
        import getpass

        try:
            return getpass.getuser()
        except Exception:  # no passwd entry in some containers
            return "unknown"

    @classmethod
    def documented(cls) -> list[tuple[str, str, str, str]]:
        """(setting, environment variable, default, help) for every setting: the docs table."""
        rows = []
        for f in dataclasses.fields(cls):
            env = ENV_PREFIX + (f.metadata.get("env") or f.name.upper())
            default = f.default if f.default is not dataclasses.MISSING else ""
            rows.append((f.name, env, str(default), f.metadata["help"]))
        return rows


def _coerce(f: dataclasses.Field, raw: str) -> Any:
    kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    if kind == "bool":
        return raw.strip().lower() in ("1", "true", "yes", "on")
    if kind == "int":
        return int(raw)
    if kind == "float":
        return float(raw)
    if kind == "Path":
        return Path(raw)
    return raw
