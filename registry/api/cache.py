"""Answers of the read routes (search, show), kept until the catalog next commits anything.

An entry is the response's bytes and its ETag under the database's data token
(registry/db.py `Database.data_token`: PostgreSQL's snapshot, SQLite's count of changes seen),
taken before the answer is read: an answer is reused only while the token is the one it was read
under, so a reused answer is never older than the catalog's state when the request arrived. Every
commit, from this process or any other, moves the token on, and the first request under a new
token empties the cache. A hit costs one look at the token instead of the route's statements and
its JSON encoding.

The key is everything the answer depends on besides the catalog: the route, its validated
parameters and the namespace the caller's reads are narrowed to (registry/tokens.py
`read_prefix`), so callers whose tokens see different namespaces never share an entry. Every
answer carries an ETag (its bytes' digest); a request whose If-None-Match names it gets 304.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

from fastapi import Request, Response

from registry.api import render

NOT_MODIFIED: dict[int | str, dict[str, Any]] = {
    304: {"description": "Not Modified: the If-None-Match header names this answer's ETag."}}


class ResponseCache:
    """Bounded (bytes of the bodies kept), least recently used first out; thread-safe."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max(0, max_bytes)
        self._lock = threading.Lock()
        self._token: Hashable | None = None
        self._entries: OrderedDict[Hashable, tuple[bytes, str]] = OrderedDict()
        self._size = 0
        self.hits = self.misses = 0

    def respond(self, request: Request, db: Any, key: Hashable, compute: Callable[[], Any]) -> Response:
        """The answer for `key`: kept, or `compute()`'s result rendered (and kept); 304 when the
        request's If-None-Match names its ETag."""
        token = db.data_token() if self.max_bytes else None
        entry = self._get(token, key) if token is not None else None
        if entry is None:
            body = render.encode(compute())
            entry = (body, '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"')
            if token is not None:
                self._put(token, key, entry)
        body, etag = entry
        headers = {"ETag": etag}
        if _matches(request.headers.get("if-none-match"), etag):
            return Response(status_code=304, headers=headers)
        return Response(body, media_type="application/json", headers=headers)

    def _get(self, token: Hashable, key: Hashable) -> tuple[bytes, str] | None:
        with self._lock:
            if token != self._token:
                if isinstance(token, int) and isinstance(self._token, int) and token < self._token:
                    return None  # taken before a newer one (SQLite's count): a miss, not a reset
                self._token = token
                self._entries.clear()
                self._size = 0
            entry = self._entries.get(key)
            if entry is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return entry

    def _put(self, token: Hashable, key: Hashable, entry: tuple[bytes, str]) -> None:
        size = len(entry[0])
        if size * 8 > self.max_bytes:
            return  # one answer may take an eighth of the cache at most
        with self._lock:
            if token != self._token:
                return  # the catalog moved on while this answer was read
            old = self._entries.pop(key, None)
            if old is not None:
                self._size -= len(old[0])
            self._entries[key] = entry
            self._size += size
            while self._size > self.max_bytes:
                _, (dropped, _) = self._entries.popitem(last=False)
                self._size -= len(dropped)


def _matches(header: str | None, etag: str) -> bool:
    """If-None-Match (RFC 9110 13.1.2: weak comparison): "*" or a list naming `etag`."""
    if not header:
        return False
    tags = [t.strip().removeprefix("W/") for t in header.split(",")]
    return "*" in tags or etag in tags


def for_app(request: Request) -> ResponseCache:
    cache: ResponseCache = request.app.state.response_cache
    return cache
