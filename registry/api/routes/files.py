"""Stored files by digest: ETag = digest, If-None-Match (304), single Range requests (206).

A digest is not a secret (it is computable from the bytes and listed by `show`), so a blob is
served only when a version the caller may read references it (catalog.queries.blob_visible);
otherwise the answer is the same 404 whether the blob exists or not. The unrestricted admin
downloads any stored blob.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Request
from fastapi.responses import Response, StreamingResponse

from registry.api.auth import Caller
from registry.api.deps import Reader
from registry.api.errors import error_response, responses
from registry.catalog import queries as Q
from registry.errors import BlobNotFound
from registry.storage.digest import check_digest
from registry.tokens import read_prefix

router = APIRouter(prefix="/api/v1", tags=["files"])
RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
CHUNK = 1024 * 1024

Digest = Annotated[str, Path(description="sha256, 64 lowercase hex", pattern="^[0-9a-f]{64}$")]
FILE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "The whole file", "content": {"application/octet-stream": {}}},
    206: {"description": "The requested byte range", "content": {"application/octet-stream": {}}},
    304: {"description": "Not modified (If-None-Match matched the digest)"},
    **responses(400, 401, 403, 404, 416, 422),
}


def parse_range(header: str | None, size: int) -> tuple[int, int] | None | str:
    """(start, end exclusive) for a single `bytes=` range; None to send everything; "bad" if unsatisfiable."""
    if not header:
        return None
    m = RANGE.match(header.strip())
    if not m or (not m.group(1) and not m.group(2)):
        return None  # RFC 9110: a Range the server does not understand is ignored
    a, b = m.group(1), m.group(2)
    if not a:  # suffix: the last N bytes
        n = int(b)
        return (max(0, size - n), size) if n > 0 and size > 0 else "bad"
    start = int(a)
    end = min(int(b) + 1, size) if b else size
    if start >= size or (b and int(b) < start):
        return "bad"
    return start, end


def _size(caller: Caller, digest: str) -> int:
    """The blob's size, when this caller may download it (else BlobNotFound, naming no store path)."""
    core = caller.registry.core
    if core.is_operator:
        return caller.registry.store.size(digest)
    missing = BlobNotFound(f"no blob {digest} that this caller may read", digest=digest)
    with core.db.read() as s:
        if not Q.blob_visible(s, digest, read_prefix(core)):
            raise missing
    try:
        return caller.registry.store.size(digest)
    except BlobNotFound:
        raise missing from None


def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    tags = [t.strip().removeprefix("W/") for t in header.split(",")]
    return "*" in tags or etag in tags


@router.head("/blobs/{digest}", responses=FILE_RESPONSES, response_class=Response)
def head_blob(digest: Digest, request: Request,
              caller: Reader, range: Annotated[str | None, Header()] = None,
              if_none_match: Annotated[str | None, Header()] = None):
    """The headers a GET would answer with (size, ETag), without the body."""
    return get_blob(digest, request, caller, range, if_none_match)


@router.get("/blobs/{digest}", responses=FILE_RESPONSES, response_class=Response)
def get_blob(digest: Digest, request: Request,
             caller: Reader, range: Annotated[str | None, Header()] = None,
             if_none_match: Annotated[str | None, Header()] = None):
    """Download a stored file by its sha256 (ETag is the digest; Range and If-None-Match work)."""
    check_digest(digest)
    store = caller.registry.store
    size = _size(caller, digest)
    etag = f'"{digest}"'
    base = {"ETag": etag, "Accept-Ranges": "bytes", "Cache-Control": "public, max-age=31536000, immutable"}
    if _etag_matches(if_none_match, etag):
        return Response(status_code=304, headers=base)
    r = parse_range(range, size)
    if r == "bad":
        return error_response(416, "range_not_satisfiable", f"range {range!r} is outside the file ({size} bytes)",
                              headers={"Content-Range": f"bytes */{size}"})
    start, end, status = (0, size, 200) if r is None else (*r, 206)
    headers = {**base, "Content-Length": str(end - start)}
    if status == 206:
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers, media_type="application/octet-stream")
    f = store.open(digest, start=start, end=None if r is None else end)

    def chunks():
        with f:
            while True:
                b = f.read(CHUNK)
                if not b:
                    return
                yield b

    return StreamingResponse(chunks(), status_code=status, headers=headers, media_type="application/octet-stream")
