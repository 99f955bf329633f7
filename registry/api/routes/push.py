"""Push an adapter over HTTP: a multipart upload of the folder's files, streamed to disk, then
Registry.push on that folder (the same checks and the same result as a local push)."""

from __future__ import annotations

import contextlib
import pathlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Path, Request
from fastapi.concurrency import run_in_threadpool

from registry import types as T
from registry.adapters.inspect import check_name
from registry.api import upload
from registry.api.deps import Writer
from registry.api.errors import responses
from registry.api.render import json
from registry.errors import InvalidInput

if TYPE_CHECKING:  # pragma: no cover
    from registry.app import Registry

router = APIRouter(prefix="/api/v1", tags=["adapters"])

UPLOAD_BODY = {
    "required": True,
    "content": {"multipart/form-data": {"schema": {
        "type": "object",
        "required": ["files"],
        "properties": {
            "files": {"type": "array", "items": {"type": "string", "format": "binary"},
                      "description": "The adapter folder's files; each part's filename is its relative path."},
            "base": {"type": "string", "description": "Registered base model (NAME or NAME@REV)."},
            "tag": {"type": "array", "items": {"type": "string"}, "description": "KEY=VALUE, repeatable."},
            "description": {"type": "string"},
            "checkpoint": {"type": "string", "description": "Of a Trainer output: last, best or a step number."},
            "adapter": {"type": "string", "description": "Of a multi-adapter save: the adapter to push."},
        }}}},
}
UPLOAD_ALL_BODY = {
    "required": True,
    "content": {"multipart/form-data": {"schema": {
        "type": "object",
        "required": ["files"],
        "properties": {
            **UPLOAD_BODY["content"]["multipart/form-data"]["schema"]["properties"],  # type: ignore[index]
            "map": {"type": "array", "items": {"type": "string"},
                    "description": "ADAPTER=NAME, repeatable: the registry name of an adapter."},
        }}}},
}


@router.post("/adapters/{name:path}/versions", response_model=T.AdapterVersion, status_code=201,
             responses={200: {"model": T.AdapterVersion, "description": "The same files were pushed before"},
                        **responses(400, 401, 403, 404, 409, 413, 422)},
             openapi_extra={"requestBody": UPLOAD_BODY})
async def push(name: Annotated[str, Path(description="Adapter name, e.g. team-a/support-bot")], request: Request,
               caller: Writer):
    """Register an uploaded adapter folder as a new version (201), or return the version that has the
    same files already (200). Limited to `max_upload_bytes` (413 past it)."""
    check_name(name)
    caller.can_write(name)
    reg = caller.registry
    async with _uploaded(request, reg) as (folder, fields):
        v = await run_in_threadpool(reg.push, folder, name=name, **_options(fields), adapter=_one(fields, "adapter"))
    return json(v, 201 if v.created else 200)


@router.post("/adapters/{name:path}/push-all", response_model=T.MultiPush, status_code=200,
             responses={**responses(400, 401, 403, 404, 409, 413, 422)},
             openapi_extra={"requestBody": UPLOAD_ALL_BODY})
async def push_all(name: Annotated[str, Path(description="Registry name of the 'default' adapter; the others "
                                                         "become NAME-ADAPTER unless mapped")],
                   request: Request, caller: Writer):
    """Register every adapter of an uploaded multi-adapter save, one version each (Registry.push_all).
    The caller needs write access to every name the adapters get."""
    from registry.adapters.outputs import adapters_in, parse_maps, registry_names

    check_name(name)
    caller.can_write(name)
    reg = caller.registry
    async with _uploaded(request, reg) as (folder, fields):
        names = parse_maps(fields.get("map", []))
        for target in registry_names(name, list(adapters_in(folder)), names).values():
            check_name(target)
            caller.can_write(target)
        out = await run_in_threadpool(reg.push_all, folder, name=name, **_options(fields), names=names)
    return json(out, 200)


@contextlib.asynccontextmanager
async def _uploaded(request: Request, reg: Registry) -> AsyncIterator[tuple[pathlib.Path, dict[str, list[str]]]]:
    """The request's multipart files in a fresh upload folder (removed afterwards), and its fields."""
    with upload.upload_folder(reg.settings.home) as folder:
        files, fields = await upload.receive(request.stream(), request.headers.get("content-type", ""),
                                             request.headers.get("content-length"), folder,
                                             limit=reg.settings.max_upload_bytes)
        if not files:
            raise InvalidInput("no files uploaded", hint="send the adapter folder's files as parts named 'files'")
        yield folder, fields


def _one(fields: dict[str, list[str]], key: str) -> str | None:
    return (fields.get(key) or [""])[-1] or None


def _options(fields: dict[str, list[str]]) -> dict:
    """The form fields both pushes take, as Registry.push's keyword arguments."""
    return {"base": _one(fields, "base"), "tags": fields.get("tag", []), "description": _one(fields, "description")
            or "", "checkpoint": _one(fields, "checkpoint")}
