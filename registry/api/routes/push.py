"""Push an adapter over HTTP: a multipart upload of the folder's files, streamed to disk, then
Registry.push on that folder (the same checks and the same result as a local push)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.concurrency import run_in_threadpool

from registry import types as T
from registry.adapters.inspect import check_name
from registry.api import upload
from registry.api.deps import Writer
from registry.api.errors import responses
from registry.api.render import json
from registry.errors import InvalidInput

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
    with upload.upload_folder(reg.settings.home) as folder:
        files, fields = await upload.receive(request.stream(), request.headers.get("content-type", ""),
                                             request.headers.get("content-length"), folder,
                                             limit=reg.settings.max_upload_bytes)
        if not files:
            raise InvalidInput("no files uploaded", hint="send the adapter folder's files as parts named 'files'")
        base = (fields.get("base") or [""])[-1] or None
        description = (fields.get("description") or [""])[-1]
        v = await run_in_threadpool(reg.push, folder, name=name, base=base, tags=fields.get("tag", []),
                                    description=description)
    return json(v, 201 if v.created else 200)
