"""Answers of the adapter read routes (search, an adapter, a version), kept until the catalog next
commits anything.

An entry is the response's bytes and its ETag under the database's data token
(registry/db.py `Database.data_token`: PostgreSQL's snapshot, SQLite's count of changes seen),
taken before the answer is read: an answer is reused only while the token is the one it was read
under, so a reused answer is never older than the catalog's state when the request arrived. Every
commit, from this process or any other, moves the token on; the first request under a newer token
empties the cache, and one that took its token before a newer one was seen only misses. A hit
costs one look at the token instead of the route's statements and its JSON encoding. The bound
counts each entry's body, key, ETag and a fixed overhead, so many tiny answers cannot outgrow it.

The key is everything the answer depends on besides the catalog: the route, its validated
parameters and the namespace the caller's reads are narrowed to (registry/tokens.py
`read_prefix`; search's `name` is narrowed too, so this is belt and braces), so callers whose
tokens see different namespaces never share an entry. Every answer carries an ETag (its bytes'
digest) and `Cache-Control: private, no-cache`; a request whose If-None-Match names it gets 304.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

from fastapi import Request, Response

from registry.api import render

ENTRY_OVERHEAD = 250
NOT_MODIFIED: dict[int | str, dict[str, Any]] = {
    304: {"description": "Not Modified: the If-None-Match header names this answer's ETag."}}


class ResponseCache:
    """Bounded (bytes of the bodies kept), least recently used first out; thread-safe."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max(0, max_bytes)
        self._lock = threading.Lock()
        self._token: tuple[Any, ...] | None = None
        self._entries: OrderedDict[Hashable, tuple[bytes, str, int]] = OrderedDict()
        self._size = 0
        self.hits = self.misses = 0

    def respond(self, request: Request, db: Any, key: Hashable, compute: Callable[[], Any]) -> Response:
        """The answer for `key`: kept, or `compute()`'s result rendered (and kept); 304 when the
        request's If-None-Match names its ETag."""
        token = db.data_token() if self.max_bytes else None
        entry = self._get(token, key) if token is not None else None
        if entry is None:
            body = render.encode(compute())
            etag = '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'
            if token is not None:
                self._put(token, key, body, etag)
        else:
            body, etag = entry
        # private: with closed reads the answer depends on the caller's token; no-cache: a client
        # may keep it but asks again (with If-None-Match) before using it
        headers = {"ETag": etag, "Cache-Control": "private, no-cache"}
        if _matches(request.headers.get("if-none-match"), etag):
            return Response(status_code=304, headers=headers)
        return Response(body, media_type="application/json", headers=headers)

    def _get(self, token: tuple[Any, ...], key: Hashable) -> tuple[bytes, str] | None:
        with self._lock:
            if token != self._token:
                if self._token is not None and token < self._token:
                    return None  # taken before a newer one (tokens order): a miss, not a reset
                self._token = token
                self._entries.clear()
                self._size = 0
            entry = self._entries.get(key)
            if entry is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return entry[0], entry[1]

    def _put(self, token: tuple[Any, ...], key: Hashable, body: bytes, etag: str) -> None:
        # what an entry costs: its body, its key's text (a query of up to the header limit), the
        # ETag and the objects around them (~250 bytes: a tuple, the dict's slot, the str headers)
        size = len(body) + len(repr(key)) + len(etag) + ENTRY_OVERHEAD
        if size * 8 > self.max_bytes:
            return  # one answer may take an eighth of the cache at most
        with self._lock:
            if token != self._token:
                return  # the catalog moved on while this answer was read
            old = self._entries.pop(key, None)
            if old is not None:
                self._size -= old[2]
            self._entries[key] = (body, etag, size)
            self._size += size
            while self._size > self.max_bytes:
                _, (_, _, dropped) = self._entries.popitem(last=False)
                self._size -= dropped


def _matches(header: str | None, etag: str) -> bool:
    """If-None-Match (RFC 9110 13.1.2: weak comparison): "*" or a list naming `etag`."""
    if not header:
        return False
    tags = [t.strip().removeprefix("W/") for t in header.split(",")]
    return "*" in tags or etag in tags


def for_app(request: Request) -> ResponseCache:
    cache: ResponseCache = request.app.state.response_cache
    return cache
