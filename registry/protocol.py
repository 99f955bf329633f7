"""The contract `Registry` (local) and `registry.Client` (over HTTP) both keep.

Code written against `RegistryProtocol` works with either: the same methods, with the same
signatures (tests/contract/test_signatures.py fails when they differ), returning the same frozen
result types and raising the same exceptions (tests/contract/ runs one suite against both).
What only makes sense next to the catalog (merging in this process, base folders, gc, tokens,
enqueueing arbitrary job kinds) is on `Registry` alone; the Client raises RemoteUnsupported.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from registry import types as T
from registry.release import types as RT

Progress = Callable[[str, int, int], None]  # (stage, done, total)


@runtime_checkable
class JobsProtocol(Protocol):
    """`reg.jobs`: follow and steer jobs, and ask for verify / merge / publish jobs."""

    def get(self, job_id: int) -> T.Job: ...

    def list(self, *, state: str | None = None, kind: str | None = None, limit: int = 50) -> builtins.list[T.Job]: ...

    def cancel(self, job_id: int) -> T.Job: ...

    def retry(self, job_id: int) -> T.Job: ...

    def workers(self, *, include_stopped: bool = False) -> builtins.list[T.WorkerInfo]: ...

    def wait(self, job_id: int, *, timeout: float | None = None, poll_s: float = 0.5,
             progress: Callable[[T.Job], None] | None = None) -> T.Job: ...

    def verify(self, ref: str, *, base: str | None = None, dtype: str | None = None, engine: str = "peft",
               wait: bool = False, timeout: float | None = None, inline: bool = False,
               device: str = "cpu") -> T.Job: ...

    def merge_async(self, ref: str, *, dtype: str | None = None, engine: str = "auto", validate: bool = False,
                    device: str | None = None, wait: bool = False, timeout: float | None = None,
                    inline: bool = False) -> T.Job: ...

    def publish(self, ref: str, *, to: str, dtype: str | None = None, force: bool = False, engine: str = "auto",
                wait: bool = False, timeout: float | None = None, inline: bool = False,
                device: str = "cpu") -> T.Job: ...


@runtime_checkable
class ReleaseProtocol(Protocol):
    """`reg.release`: aliases with their history, deprecation, the event feed."""

    def set_alias(self, name: str, alias: str, version: int | str, *, reason: str | None = None,
                  force: bool = False) -> RT.AliasChange: ...

    def remove_alias(self, name: str, alias: str, *, reason: str | None = None,
                     force: bool = False) -> RT.AliasChange: ...

    def aliases(self, name: str | None = None) -> list[RT.AliasInfo]: ...

    def alias_history(self, name: str, alias: str | None = None, *,
                      limit: int | None = None) -> list[RT.AliasMove]: ...

    def deprecate(self, ref: str, *, successor: str | None = None, reason: str | None = None) -> T.AdapterVersion: ...

    def events(self, after_id: int = 0, limit: int = 100, *, kinds: Iterable[str] = ()) -> list[T.EventInfo]: ...


@runtime_checkable
class RegistryProtocol(Protocol):
    """Reads, writes and jobs of an adapter registry, local or remote."""

    @property
    def jobs(self) -> JobsProtocol: ...

    @property
    def release(self) -> ReleaseProtocol: ...

    # -- reads
    def search(self, *, base: str | None = None, min_rank: int | None = None, max_rank: int | None = None,
               peft_type: str | None = None, target_modules: Iterable[str] = (),
               tags: Mapping[str, str] | Iterable[str] = (), metrics: Iterable[str] = (), sort: str | None = None,
               limit: int = 50, offset: int = 0, include_deprecated: bool = False, name: str | None = None,
               use_dora: bool | None = None, count: bool = False) -> T.SearchPage: ...

    def show(self, ref: str) -> T.AdapterVersion: ...

    def get(self, ref: str) -> T.AdapterVersion: ...

    def adapter(self, name: str) -> T.Adapter: ...

    def evals(self, ref: str) -> list[T.EvalResult]: ...

    def merged(self, ref: str) -> list[T.MergedArtifact]: ...

    def list_bases(self, name: str | None = None) -> list[T.BaseModel]: ...

    def show_base(self, ref: str) -> T.BaseModel: ...

    def resolve(self, ref: str, *, local_dir: str | Path | None = None) -> Path: ...

    def load(self, ref: str, *, device: str = "cpu", dtype: str | None = None) -> Any: ...

    def load_merged(self, ref: str, *, device: str = "cpu", dtype: str | None = None) -> Any: ...

    def audit(self, *, limit: int = 100, target: str | None = None) -> list[T.AuditEntry]: ...

    # -- writes
    def add_base(self, path: str | Path, *, name: str, revision: str | None = None, store_weights: bool = False,
                 full_hash: bool = False, progress: Progress | None = None,
                 hub_id: str | None = None) -> T.BaseModel: ...

    def push(self, path: str | Path, *, name: str, base: str | None = None,
             tags: Mapping[str, str] | Iterable[str] = (), description: str = "",
             progress: Progress | None = None, checkpoint: str | None = None,
             adapter: str | None = None) -> T.AdapterVersion: ...

    def push_all(self, path: str | Path, *, name: str, base: str | None = None,
                 tags: Mapping[str, str] | Iterable[str] = (), description: str = "",
                 progress: Progress | None = None, checkpoint: str | None = None,
                 names: Mapping[str, str] | None = None) -> T.MultiPush: ...

    def add_eval(self, ref: str, metrics: Mapping[str, float] | Iterable[str], *, dataset: str | None = None,
                 split: str | None = None, source: str = "manual",
                 details: dict[str, Any] | None = None) -> list[T.EvalResult]: ...

    def add_lm_eval(self, ref: str, results_file: str | Path | Mapping[str, Any], *,
                    file_name: str | None = None) -> list[T.EvalResult]: ...

    def close(self) -> None: ...


PROTOCOLS: dict[str, type] = {"": RegistryProtocol, "jobs": JobsProtocol, "release": ReleaseProtocol}


def methods(protocol: type) -> list[str]:
    """The method names a protocol defines (not its properties)."""
    return sorted(n for n, v in vars(protocol).items() if callable(v) and not n.startswith("_"))
