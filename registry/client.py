"""registry.Client: Registry's contract (registry/protocol.py) over a registry server's HTTP API.

    reg = Client("http://registry:8080", token=os.environ.get("ADAPTER_REGISTRY_TOKEN"))
    path = reg.resolve("team-a/support-bot@production")   # a local folder, digests verified

The same methods with the same signatures as Registry (a test compares them), results the same
frozen types (registry.types) and errors the same exceptions (registry.errors), rebuilt from the
API's JSON, so code does not care which one it holds. A push uploads exactly the files a local
push reads (registry.adapters.inspect.push_files).
"""

from __future__ import annotations

import builtins
import dataclasses
import datetime as dt
import types as pytypes
import typing
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from registry import errors as E
from registry import types as T
from registry.enums import JobState
from registry.release import types as RT
from registry.storage.digest import check_digest

Progress = Callable[[str, int, int], None]  # (stage, done, total)


class Client:
    """A registry server's HTTP API with Registry's methods (registry.protocol.RegistryProtocol)."""

    def __init__(self, url: str, *, token: str | None = None, cache_dir: str | Path | None = None,
                 timeout: float = 60.0, transport: httpx.BaseTransport | None = None):
        self.url = url.rstrip("/")
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else Path("~/.cache/adapter-registry").expanduser()
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.url + "/api/v1", headers=headers, timeout=timeout,
                                  transport=transport, follow_redirects=False)
        self.jobs = _RemoteJobs(self)
        self.release = _RemoteRelease(self)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ---------------------------------------------------------------------------
    def _call(self, method: str, path: str, **kw) -> Any:
        try:
            r = self._http.request(method, path, **kw)
        except httpx.TransportError as e:
            raise _unreachable(self.url, e) from e
        if r.status_code >= 400:
            raise from_response(r)
        return r.json()

    # -- reads (Registry's signatures) -------------------------------------------------------
    def search(self, *, base: str | None = None, min_rank: int | None = None, max_rank: int | None = None,
               peft_type: str | None = None, target_modules: Iterable[str] = (),
               tags: Mapping[str, str] | Iterable[str] = (), metrics: Iterable[str] = (), sort: str | None = None,
               limit: int = 50, offset: int = 0, include_deprecated: bool = False, name: str | None = None,
               use_dora: bool | None = None, count: bool = False) -> T.SearchPage:
        tags = _tag_list(tags)
        params = {"base": base, "min_rank": min_rank, "max_rank": max_rank, "peft_type": peft_type,
                  "target_module": list(target_modules), "tag": tags, "metric": list(metrics), "sort": sort,
                  "limit": limit, "offset": offset, "deprecated": include_deprecated, "name": name,
                  "use_dora": use_dora, "count": count}
        params = {k: v for k, v in params.items() if v is not None and v != []}
        return from_dict(T.SearchPage, self._call("GET", "/adapters", params=params))

    def show(self, ref: str) -> T.AdapterVersion:
        name, version = _split_ref(ref)
        return from_dict(T.AdapterVersion, self._call("GET", f"/adapters/{_q(name)}/versions/{_q(version)}"))

    def get(self, ref: str) -> T.AdapterVersion:
        """The version (the server's show is cheap enough; the fields a local `get` leaves empty are filled)."""
        return self.show(ref)

    def adapter(self, name: str) -> T.Adapter:
        return from_dict(T.Adapter, self._call("GET", f"/adapters/{_q(name)}"))

    def evals(self, ref: str) -> list[T.EvalResult]:
        name, version = _split_ref(ref)
        return [from_dict(T.EvalResult, d)
                for d in self._call("GET", f"/adapters/{_q(name)}/versions/{_q(version)}/evals")]

    def list_bases(self, name: str | None = None) -> list[T.BaseModel]:
        return [from_dict(T.BaseModel, d) for d in self._call("GET", "/bases", params={"name": name} if name else {})]

    def show_base(self, ref: str) -> T.BaseModel:
        return from_dict(T.BaseModel, self._call("GET", f"/bases/{_q(ref)}"))

    def audit(self, *, limit: int = 100, target: str | None = None) -> list[T.AuditEntry]:
        params = {"limit": limit, **({"target": target} if target else {})}
        return [from_dict(T.AuditEntry, d) for d in self._call("GET", "/audit", params=params)]

    def resolve(self, ref: str, *, local_dir: str | Path | None = None) -> Path:
        """A local folder with the version's files, each verified against its digest (cached by digest).

        When the server's folder of the version's base exists on this machine (a shared file system,
        or the same host), adapter_config.json names it, as a local resolve does (storage/loadable.py).
        With `local_dir`, a copy the caller owns is made there and returned.
        """
        from registry.storage.cache import materialize
        from registry.storage.loadable import CONFIG, with_local_base
        from registry.workflows.resolve import export

        v = self.show(ref)
        if v.deprecated:
            import warnings

            warnings.warn(f"{ref} is deprecated" + (f": {v.deprecation_reason}" if v.deprecation_reason else ""),
                          DeprecationWarning, stacklevel=2)
        files = {f.path: f.digest for f in v.files}
        path = materialize(_HttpBlobs(self), files, self.cache_dir / "adapters" / v.content_digest,
                           cache_root=self.cache_dir)
        base_dir = self._local_base(v) if CONFIG in files else None
        if base_dir is not None:
            path = with_local_base(_HttpBlobs(self), files, self.cache_dir / "loadable", cache_root=self.cache_dir,
                                   sizes={f.path: f.size for f in v.files}, base_dir=base_dir) or path
        return export(path, Path(local_dir)) if local_dir else path

    def _local_base(self, v: T.AdapterVersion) -> Path | None:
        """The version's base on this machine, or None: the server's recorded folder (shown to an admin)
        or, for a base with a Hub id, its snapshot in the local Hugging Face cache (never downloaded).
        A candidate counts only when its fingerprint is the base's: the same model, not one like it."""
        from registry.adapters.basemodel import fingerprint_base

        if v.base is None:
            return None
        base = self.show_base(f"{v.base.name}@{v.base.fingerprint[:16]}")
        for folder in (base.location, _hub_snapshot(base.hub_id, base.revision)):
            if not folder or not (Path(folder) / "config.json").is_file():
                continue
            try:
                if fingerprint_base(Path(folder), revision=base.revision).fingerprint == base.fingerprint:
                    return Path(folder)
            except E.RegistryError:
                continue
        return None

    def load(self, ref: str, *, device: str = "cpu", dtype: str | None = None) -> Any:
        """The version as a `peft.PeftModel`: resolved (downloaded, verified), then loaded here on its base,
        which must be on this machine at the server's recorded location.

        Raises:
            BaseModelNotFound: no base recorded, or the base's folder is not on this machine.
        """
        from registry.verify.load import peft_model

        v = _with_base(self.show(ref))
        base_dir = self._local_base(v)
        if base_dir is None:
            where = f"base {v.base.name}@{v.base.fingerprint[:12]}" if v.base else "the base"
            raise E.BaseModelNotFound(f"{v.ref}: {where} is not on this machine, so it cannot be loaded here",
                                      ref=v.ref, hint="load it where the base's folder is, or resolve the adapter "
                                                      "and load it with PeftModel.from_pretrained(base, path)")
        return peft_model(self.resolve(v.ref), base_dir, device=device, dtype=dtype)

    def load_merged(self, ref: str, *, device: str = "cpu", dtype: str | None = None) -> Any:
        """The version's merged model as the server has it (the newest artifact in `dtype`, any dtype when
        None), downloaded and verified into the local cache, loaded here.

        Raises:
            NotFound: the server has no such merged artifact (a server merges as a job: `merge --async`).
        """
        from registry import dtypes
        from registry.storage.cache import materialize
        from registry.verify.load import merged_model

        want = dtypes.optional(dtype)
        _with_base(self.show(ref))
        arts = sorted((m for m in self.merged(ref) if want is None or m.dtype == want), key=lambda m: m.id)
        if not arts:
            raise E.NotFound(f"{ref} has no merged model{f' in {want}' if want else ''} on the server",
                             ref=ref, hint=f"merge it there first: adapter-registry --remote {self.url} "
                                           f"merge {ref}{f' --dtype {want}' if want else ''} --async")
        art = arts[-1]
        files = {rel: f["digest"] for rel, f in art.files.items()}
        folder = materialize(_HttpBlobs(self), files, self.cache_dir / "merged" / art.manifest_digest,
                             cache_root=self.cache_dir, sizes={rel: int(f["size"]) for rel, f in art.files.items()},
                             sealed=True, hashed=["manifest.json"] if "manifest.json" in files else [])
        return merged_model(folder, device=device, dtype=art.dtype)

    def download(self, digest: str, dest: Path) -> Path:
        """Fetch one stored file by digest into `dest` (verified)."""
        _HttpBlobs(self).fetch(check_digest(digest), Path(dest))
        return Path(dest)

    def merged(self, ref: str) -> list[T.MergedArtifact]:
        name, version = _split_ref(ref)
        return [from_dict(T.MergedArtifact, d)
                for d in self._call("GET", f"/adapters/{_q(name)}/versions/{_q(version)}/merged")]

    # -- writes ------------------------------------------------------------------------------
    def add_base(self, path: str | Path, *, name: str, revision: str | None = None, store_weights: bool = False,
                 full_hash: bool = False, progress: Progress | None = None, hub_id: str | None = None) -> T.BaseModel:
        """Register a base model by reference: `path` is a folder on the server's filesystem.

        The server fingerprints (and with `store_weights` stores) it; `progress` is not called.
        """
        body = {"name": name, "path": str(path), "revision": revision, "store_weights": store_weights,
                "full_hash": full_hash, "hub_id": hub_id}
        return from_dict(T.BaseModel, self._call("POST", "/bases", json=body))

    def push(self, path: str | Path, *, name: str, base: str | None = None,
             tags: Mapping[str, str] | Iterable[str] = (), description: str = "",
             progress: Progress | None = None, checkpoint: str | None = None,
             adapter: str | None = None) -> T.AdapterVersion:
        """Upload the files a local push of `path` reads (streamed, one part per file) and register them.

        Raises what a local push raises for a folder that is not an adapter (before uploading).
        """
        from registry.adapters.inspect import push_files

        files = push_files(Path(path), checkpoint=checkpoint, adapter=adapter)
        data = {"description": description, "tag": _tag_list(tags), **({"base": base} if base else {}),
                **({"checkpoint": checkpoint} if checkpoint else {}), **({"adapter": adapter} if adapter else {})}
        out = from_dict(T.AdapterVersion, self._upload(f"/adapters/{_q(name)}/versions", files, data))
        if progress:
            progress("upload", len(files), len(files))
        return out

    def push_all(self, path: str | Path, *, name: str, base: str | None = None,
                 tags: Mapping[str, str] | Iterable[str] = (), description: str = "",
                 progress: Progress | None = None, checkpoint: str | None = None,
                 names: Mapping[str, str] | None = None) -> T.MultiPush:
        """Upload every adapter of a multi-adapter save in one request; the server pushes them all."""
        from registry.adapters.inspect import push_files

        files = push_files(Path(path), checkpoint=checkpoint, every_adapter=True)
        data = {"description": description, "tag": _tag_list(tags), **({"base": base} if base else {}),
                **({"checkpoint": checkpoint} if checkpoint else {}),
                "map": [f"{a}={n}" for a, n in (names or {}).items()]}
        out = from_dict(T.MultiPush, self._upload(f"/adapters/{_q(name)}/push-all", files, data))
        if progress:
            progress("upload", len(files), len(files))
        return out

    def _upload(self, route: str, files: list[tuple[str, Path]], data: dict[str, Any]) -> Any:
        handles = []
        try:
            parts = []
            for rel, local in files:
                handles.append(open(local, "rb"))
                parts.append(("files", (rel, handles[-1], "application/octet-stream")))
            return self._call("POST", route, data=data, files=parts)
        finally:
            for h in handles:
                h.close()

    def add_eval(self, ref: str, metrics: Mapping[str, float] | Iterable[str], *, dataset: str | None = None,
                 split: str | None = None, source: str = "manual",
                 details: dict[str, Any] | None = None) -> list[T.EvalResult]:
        from registry.refs import parse_metric_value

        items = dict(metrics) if isinstance(metrics, Mapping) else dict(parse_metric_value(m) for m in metrics)
        name, version = _split_ref(ref)
        body = {"metrics": items, "dataset": dataset, "split": split, "source": source, "details": details}
        return [from_dict(T.EvalResult, d)
                for d in self._call("POST", f"/adapters/{_q(name)}/versions/{_q(version)}/evals", json=body)]

    def add_lm_eval(self, ref: str, results_file: str | Path | Mapping[str, Any], *,
                    file_name: str | None = None) -> list[T.EvalResult]:
        """Import an lm-evaluation-harness results JSON: the document goes to the server, which parses it."""
        from registry.evals import read_lm_eval

        if isinstance(results_file, Mapping):
            doc = dict(results_file)
        else:
            doc, file_name = read_lm_eval(Path(results_file)), file_name or Path(results_file).name
        name, version = _split_ref(ref)
        body = {"document": doc, "file_name": file_name}
        return [from_dict(T.EvalResult, d)
                for d in self._call("POST", f"/adapters/{_q(name)}/versions/{_q(version)}/lm-eval", json=body)]

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("_"):
            raise AttributeError(attr)
        raise E.RemoteUnsupported(f"{attr} is not available through a registry server (--remote)")


class _RemoteRelease:
    """`Client.release`: the release routes, with Release's signatures (registry/protocol.py)."""

    def __init__(self, client: Client):
        self.c = client

    def set_alias(self, name: str, alias: str, version: int | str, *, reason: str | None = None,
                  force: bool = False) -> RT.AliasChange:
        body = {"version": version, "reason": reason, "force": force}
        return from_dict(RT.AliasChange, self.c._call("PUT", f"/adapters/{_q(name)}/aliases/{_q(alias)}", json=body))

    def remove_alias(self, name: str, alias: str, *, reason: str | None = None,
                     force: bool = False) -> RT.AliasChange:
        params = {"force": force, **({"reason": reason} if reason else {})}
        return from_dict(RT.AliasChange, self.c._call("DELETE", f"/adapters/{_q(name)}/aliases/{_q(alias)}",
                                                      params=params))

    def aliases(self, name: str | None = None) -> list[RT.AliasInfo]:
        if name is None:
            raise E.RemoteUnsupported("listing the aliases of every adapter is not available through a server",
                                      hint="name the adapter")
        return [from_dict(RT.AliasInfo, d) for d in self.c._call("GET", f"/adapters/{_q(name)}/aliases")]

    def alias_history(self, name: str, alias: str | None = None, *,
                      limit: int | None = None) -> list[RT.AliasMove]:
        params = {k: v for k, v in (("alias", alias), ("limit", limit)) if v is not None}
        return [from_dict(RT.AliasMove, d)
                for d in self.c._call("GET", f"/adapters/{_q(name)}/aliases/history", params=params)]

    def deprecate(self, ref: str, *, successor: str | None = None, reason: str | None = None) -> T.AdapterVersion:
        name, version = _split_ref(ref)
        return from_dict(T.AdapterVersion, self.c._call(
            "POST", f"/adapters/{_q(name)}/versions/{_q(version)}/deprecate",
            json={"successor": successor, "reason": reason}))

    def events(self, after_id: int = 0, limit: int = 100, *, kinds: Iterable[str] = ()) -> list[T.EventInfo]:
        params = {"after": after_id, "limit": limit, "kind": list(kinds)}
        return [from_dict(T.EventInfo, d) for d in self.c._call("GET", "/events", params=params)]

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("_"):
            raise AttributeError(attr)
        raise E.RemoteUnsupported(f"release.{attr} is not available through a registry server (--remote)")


class _RemoteJobs:
    """`Client.jobs`: the job routes, with JobsAPI's signatures (registry/protocol.py).

    A worker runs every job: `inline` raises RemoteUnsupported, `device` is the worker's own.
    """

    def __init__(self, client: Client):
        self.c = client

    def _job(self, method: str, path: str, **kw: Any) -> T.Job:
        return from_dict(T.Job, self.c._call(method, path, **kw))

    def list(self, *, state: str | None = None, kind: str | None = None, limit: int = 50) -> builtins.list[T.Job]:
        params = {k: v for k, v in (("state", state), ("kind", kind), ("limit", limit)) if v is not None}
        return [from_dict(T.Job, d) for d in self.c._call("GET", "/jobs", params=params)]

    def get(self, job_id: int) -> T.Job:
        return self._job("GET", f"/jobs/{int(job_id)}")

    def cancel(self, job_id: int) -> T.Job:
        return self._job("POST", f"/jobs/{int(job_id)}/cancel")

    def retry(self, job_id: int) -> T.Job:
        return self._job("POST", f"/jobs/{int(job_id)}/retry")

    def workers(self, *, include_stopped: bool = False) -> builtins.list[T.WorkerInfo]:
        return [from_dict(T.WorkerInfo, d)
                for d in self.c._call("GET", "/workers", params={"stopped": include_stopped})]

    def wait(self, job_id: int, *, timeout: float | None = None, poll_s: float = 0.5,
             progress: Callable[[T.Job], None] | None = None) -> T.Job:
        from registry.jobs.follow import wait_for

        return wait_for(self.get, job_id, timeout=timeout, poll_s=poll_s, progress=progress)

    def _enqueue(self, what: str, ref: str, body: dict[str, Any], *, wait: bool, timeout: float | None,
                 inline: bool) -> T.Job:
        if inline:
            raise E.RemoteUnsupported("--inline runs a job in this process; through a server a worker runs it")
        name, version = _split_ref(ref)
        job = self._job("POST", f"/adapters/{_q(name)}/versions/{_q(version)}/{what}", json=body)
        return self.wait(job.id, timeout=timeout) if wait and job.state in (JobState.QUEUED, JobState.RUNNING) else job

    def verify(self, ref: str, *, base: str | None = None, dtype: str | None = None, engine: str = "peft",
               wait: bool = False, timeout: float | None = None, inline: bool = False, device: str = "cpu") -> T.Job:
        return self._enqueue("verify", ref, {"base": base, "dtype": dtype, "engine": engine}, wait=wait,
                             timeout=timeout, inline=inline)

    def merge_async(self, ref: str, *, dtype: str | None = None, engine: str = "auto", validate: bool = False,
                    device: str | None = None, wait: bool = False, timeout: float | None = None,
                    inline: bool = False) -> T.Job:
        body = {"dtype": dtype, "engine": engine, "validate": validate, "device": device}
        return self._enqueue("merge", ref, body, wait=wait, timeout=timeout, inline=inline)

    def publish(self, ref: str, *, to: str, dtype: str | None = None, force: bool = False, engine: str = "auto",
                wait: bool = False, timeout: float | None = None, inline: bool = False,
                device: str = "cpu") -> T.Job:
        return self._enqueue("publish", ref, {"to": to, "dtype": dtype, "force": force, "engine": engine},
                             wait=wait, timeout=timeout, inline=inline)


class _HttpBlobs:
    """Just enough of the BlobStore protocol for storage.materialize: fetch, verified."""

    def __init__(self, client: Client):
        self.client = client

    def fetch(self, digest: str, dest: Path, *, progress: Callable[[int], None] | None = None) -> None:
        from registry.storage.fsutil import land_verified

        try:
            with self.client._http.stream("GET", f"/blobs/{digest}") as r:
                if r.status_code >= 400:
                    r.read()
                    raise from_response(r)
                land_verified(r.iter_bytes(1024 * 1024), Path(dest), digest, where=f"{self.client.url} blob {digest}",
                              progress=progress)
        except httpx.TransportError as e:
            raise _unreachable(self.client.url, e) from e


def _with_base(v: T.AdapterVersion) -> T.AdapterVersion:
    """`v`, when it has a base recorded (what a local load or merge says otherwise, said the same way)."""
    if v.base is None:
        raise E.BaseModelNotFound(f"{v.ref} has no base model recorded",
                                  hint="record one with: adapter-registry version set-base REF BASE")
    return v


def _hub_snapshot(hub_id: str | None, revision: str | None) -> str | None:
    """The local Hugging Face cache's snapshot of `hub_id` at `revision` (else its main), offline; or None."""
    if not hub_id:
        return None
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    for rev in dict.fromkeys((revision, None)):
        try:
            return snapshot_download(hub_id, revision=rev, local_files_only=True)
        except (LocalEntryNotFoundError, HFValidationError, OSError):
            continue
    return None


def _q(s: str) -> str:
    return quote(str(s), safe="/")


def _split_ref(ref: str) -> tuple[str, str]:
    name, _, version = str(ref).partition("@")
    return name, version or "latest"


def _unreachable(url: str, e: Exception) -> E.RegistryError:
    return E.Unreachable(f"cannot reach the registry server at {url}: {e.__class__.__name__}: {e}", url=url)


def _tag_list(tags: Mapping[str, str] | Iterable[str]) -> list[str]:
    return [f"{k}={v}" for k, v in tags.items()] if isinstance(tags, Mapping) else list(tags)


# -- JSON -> our exceptions and result types ----------------------------------------------------
def from_response(r: httpx.Response) -> E.RegistryError:
    """The exception the server's JSON error body describes (same class when we know its code)."""
    try:
        body = r.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    code = body.get("error")
    cls = E.by_code().get(code) if isinstance(code, str) else None
    cls = cls or E.for_status(r.status_code)
    raw = body.get("context")
    ctx = {k: v for k, v in (raw if isinstance(raw, dict) else {}).items()
           if k.isidentifier() and k not in ("message", "hint", "status", "code", "exit_code")}
    err = cls(body.get("message") or f"HTTP {r.status_code} from {r.request.url}", hint=body.get("hint"), **ctx)
    if err.status != r.status_code:
        err.status = r.status_code
    if code and err.code != code:
        err.code = code
    return err


def from_dict(cls: type, data: Any) -> Any:
    """Rebuild a frozen result dataclass (nested ones, tuples, datetimes, paths) from its to_dict()."""
    return _convert(cls, data)


_HINTS: dict[type, dict[str, Any]] = {}


def _convert(tp: Any, v: Any) -> Any:
    if v is None:
        return None
    origin = typing.get_origin(tp)
    if origin in (typing.Union, pytypes.UnionType):
        members = [a for a in typing.get_args(tp) if a is not type(None)]
        return _convert(members[0], v) if len(members) == 1 else v
    if origin is tuple:
        args = typing.get_args(tp)
        return tuple(_convert(args[0], x) for x in v) if args else tuple(v)
    if origin is list:
        (arg,) = typing.get_args(tp) or (Any,)
        return [_convert(arg, x) for x in v]
    if origin is dict or tp is Any:
        return v
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        hints = _HINTS.get(tp)
        if hints is None:
            hints = _HINTS[tp] = typing.get_type_hints(tp)
        kw = {f.name: _convert(hints[f.name], v[f.name]) for f in dataclasses.fields(tp) if f.name in v}
        return tp(**kw)
    if tp is dt.datetime:
        return dt.datetime.fromisoformat(v) if isinstance(v, str) else v
    if tp is Path:
        return Path(v)
    if tp is float and isinstance(v, int):
        return float(v)
    return v
