"""Adapters: search (the filters of `ls`), an adapter with its versions, one version, its evals."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from pydantic import BaseModel, Field

from registry import types as T
from registry.api import cache
from registry.api.deps import Reader, Writer
from registry.api.errors import responses
from registry.catalog import queries as Q
from registry.errors import Forbidden

router = APIRouter(prefix="/api/v1", tags=["adapters"])
READ_ERRORS = responses(400, 401, 403, 404, 422)


from registry.api.render import json  # noqa: E402  (re-exported for the other route modules)


@router.get("/adapters", response_model=T.SearchPage,
            responses={**cache.NOT_MODIFIED, **responses(400, 401, 403, 404, 422)})
def search(
    request: Request,
    caller: Reader,
    base: Annotated[str | None, Query(description="Base model NAME (all revisions) or NAME@REV.")] = None,
    min_rank: Annotated[int | None, Query(ge=0)] = None,
    max_rank: Annotated[int | None, Query(ge=0)] = None,
    peft_type: Annotated[str | None, Query(max_length=50)] = None,
    target_module: Annotated[list[str], Query(description="Must target this module (repeatable).")] = [],
    tag: Annotated[list[str], Query(description="KEY=VALUE (repeatable).")] = [],
    metric: Annotated[list[str], Query(description="e.g. acc>=0.6 (repeatable).")] = [],
    name: Annotated[str | None, Query(description="Exact adapter name, or a namespace prefix ending in '/'.")] = None,
    sort: Annotated[str | None, Query(description="created | name | rank | version | metric:NAME[:asc]")] = None,
    use_dora: bool | None = None,
    deprecated: Annotated[bool, Query(description="Include deprecated versions.")] = False,
    count: Annotated[bool, Query(description="Also count every match (`total`).")] = False,
    limit: Annotated[int, Query(ge=0, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
):
    """Adapter versions matching every filter, newest first unless sorted otherwise (stable order).

    The answer has an ETag; with If-None-Match naming it, an unchanged answer is 304."""
    ns = caller.read_namespace()
    if ns is not None:
        if name and not name.startswith(ns):
            raise Forbidden(f"this token reads {ns}* only", namespace=ns)
        name = name or ns
        if base:
            with caller.registry.db.read() as s:
                Q.require_visible_base(s, base, ns)
    key = ("search", ns, base, min_rank, max_rank, peft_type, tuple(target_module), tuple(tag), tuple(metric), name,
           sort, use_dora, deprecated, count, limit, offset)
    return cache.for_app(request).respond(request, caller.registry.db, key, lambda: caller.registry.search(
        base=base, min_rank=min_rank, max_rank=max_rank, peft_type=peft_type, target_modules=target_module, tags=tag,
        metrics=metric, name=name, sort=sort, use_dora=use_dora, include_deprecated=deprecated, count=count,
        limit=limit, offset=offset))


@router.get("/adapters/{name:path}/versions/{ref}/evals", response_model=list[T.EvalResult], responses=READ_ERRORS)
def list_evals(name: str, ref: str, caller: Reader):
    """Every evaluation result recorded for a version, oldest first."""
    caller.can_read(name)
    return json(caller.registry.evals(f"{name}@{ref}"))


class EvalIn(BaseModel):
    metrics: dict[str, float] = Field(description="metric name -> finite value", min_length=1)
    dataset: str | None = Field(default=None, max_length=200)
    split: str | None = Field(default=None, max_length=100)
    source: str = Field(default="api", max_length=50)
    details: dict[str, Any] | None = Field(default=None, description="Where the values come from (an lm-eval "
                                           "import keeps its config, versions and per-task details here)")


@router.post("/adapters/{name:path}/versions/{ref}/evals", response_model=list[T.EvalResult], status_code=201,
             responses=responses(400, 401, 403, 404, 422))
def add_evals(name: str, ref: str, body: Annotated[EvalIn, Body()], caller: Writer):
    """Record metric values for a version (each becomes the version's current value of that metric)."""
    caller.can_write(name)
    out = caller.registry.add_eval(f"{name}@{ref}", body.metrics, dataset=body.dataset, split=body.split,
                                   source=body.source, details=body.details)
    return json(out, 201)


class LmEvalIn(BaseModel):
    document: dict[str, Any] = Field(description="an lm-evaluation-harness results_*.json, as lm-eval wrote it")
    file_name: str | None = Field(default=None, max_length=500, description="the file's name, kept in the details")


@router.post("/adapters/{name:path}/versions/{ref}/lm-eval", response_model=list[T.EvalResult], status_code=201,
             responses=responses(400, 401, 403, 404, 422))
def add_lm_eval(name: str, ref: str, body: Annotated[LmEvalIn, Body()], caller: Writer):
    """Import lm-eval results: one result per (task, metric, filter, n-shot); docs/EVALS.md names them."""
    caller.can_write(name)
    return json(caller.registry.add_lm_eval(f"{name}@{ref}", body.document, file_name=body.file_name), 201)


@router.get("/adapters/{name:path}/versions/{ref}", response_model=T.AdapterVersion,
            responses={**cache.NOT_MODIFIED, **READ_ERRORS})
def show_version(request: Request, name: str, ref: str, caller: Reader):
    """One version (a number, an alias or `latest`) with files, evals, compatibility, training,
    verifications, merged artifacts and publications. The answer has an ETag, as search's."""
    caller.can_read(name)
    return cache.for_app(request).respond(request, caller.registry.db, ("show", name, ref),
                                          lambda: caller.registry.show(f"{name}@{ref}"))


@router.get("/adapters/{name:path}", response_model=T.Adapter, responses={**cache.NOT_MODIFIED, **READ_ERRORS})
def show_adapter(request: Request, name: str, caller: Reader):
    """An adapter with all its versions (newest first) and aliases. The answer has an ETag, as search's."""
    caller.can_read(name)
    return cache.for_app(request).respond(request, caller.registry.db, ("adapter", name),
                                          lambda: caller.registry.adapter(name))
