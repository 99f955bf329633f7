"""Bounded work for every HTTP request, before any route runs.

`Limits` is a plain ASGI middleware (no per-request task, no buffering) in front of the app:

- **Authentication before the body.** A write method (POST, PUT, PATCH, DELETE) under /api/v1
  needs a valid bearer token; without one the request is answered 401 before a byte of its body is
  read, so an anonymous client cannot make the server read and parse megabytes for nothing. The
  token found is left in `request.state.token` (a TokenInfo) for the route's dependencies.
- **Body size.** Every route but the multipart push takes at most `max_body_bytes`: a larger
  Content-Length is answered 413 up front, and a body without one (chunked) is counted while the
  route reads it and cut off with 413 once it passes the limit. The push streams to disk and
  keeps its own `max_upload_bytes` (registry/api/upload.py).
- **Body timeout.** A body that stalls for `body_timeout_s` between two chunks ends with 408.
- **Concurrency.** At most `max_concurrent_requests` requests are handled at once; the next one is
  answered 503 at once (with Retry-After) instead of queueing without bound. /api/v1/healthz is exempt,
  so a busy server still reports that it is alive.

Every refusal has the one error shape (registry/api/errors.py). `settings.limits = False` turns
the middleware into a pass-through (bench/security.py measures what it costs). Connection-level
limits (header size and timeout, keep-alive, open connections) are uvicorn's, configured by
`server_config`.
"""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from registry.errors import RegistryError, TooLarge

if TYPE_CHECKING:  # pragma: no cover
    from registry.app import Registry
    from registry.settings import Settings

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# The multipart push streams to disk under its own limit (max_upload_bytes).
UPLOAD_ROUTE = re.compile(r"/api/v1/adapters/.+/versions/?")
EXEMPT = frozenset({"/api/v1/healthz"})


def body_too_large(limit: int) -> HTTPException:
    """Raised from `receive` while a route reads its body: an HTTPException (not a registry error),
    so FastAPI's body parsing lets it through to the error handler (it turns other exceptions
    into a 400)."""
    return HTTPException(413, f"the request body passed {limit} bytes, the most this server accepts on this route")


def body_timeout(seconds: float) -> HTTPException:
    """The body stalled between two chunks: a 408 through the same path as body_too_large."""
    return HTTPException(408, f"the request body stalled for more than {seconds:g} s")


class Limits:
    """The ASGI middleware; `create_app` installs it with the registry the app serves."""

    def __init__(self, app: ASGIApp, registry: Registry):
        self.app = app
        self.registry = registry
        self.settings: Settings = registry.settings
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.settings.limits:
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path in EXEMPT:
            await self.app(scope, receive, send)
            return
        limit = self.settings.max_concurrent_requests
        if limit and self.in_flight >= limit:
            await _refuse(scope, receive, send, 503, "overloaded",
                          f"the server is handling {limit} requests; try again shortly", {"Retry-After": "1"})
            return
        self.in_flight += 1
        try:
            await self._handle(scope, receive, send, path)
        finally:
            self.in_flight -= 1

    async def _handle(self, scope: Scope, receive: Receive, send: Send, path: str) -> None:
        headers = _headers(scope)
        if scope["method"] in WRITE_METHODS and path.startswith("/api/v1/"):
            try:
                token = await run_in_threadpool(self.registry.tokens.authenticate, _bearer(headers))
            except RegistryError as e:
                await _refuse_error(scope, receive, send, e)
                return
            scope.setdefault("state", {})["token"] = token
        if UPLOAD_ROUTE.fullmatch(path) and scope["method"] == "POST":
            await self.app(scope, self._timed(receive, None), send)
            return
        cap = self.settings.max_body_bytes
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > cap):
            big = TooLarge(f"the request body is {length} bytes; this server accepts {cap} on this route", limit=cap)
            await _refuse_error(scope, receive, send, big)
            return
        await self.app(scope, self._timed(receive, cap), send)

    def _timed(self, receive: Receive, cap: int | None) -> Receive:
        """`receive` with the body-chunk timeout and, when `cap` is given, the running byte count."""
        timeout = self.settings.body_timeout_s
        seen = 0
        complete = False  # after the last body chunk, receive() only waits for a disconnect: no timeout

        async def wrapped() -> Message:
            nonlocal seen, complete
            if complete or timeout <= 0:
                message = await receive()
            else:
                try:
                    message = await asyncio.wait_for(receive(), timeout)
                except asyncio.TimeoutError:
                    raise body_timeout(timeout) from None
            if message["type"] == "http.request":
                complete = not message.get("more_body", False)
                seen += len(message.get("body", b""))
                if cap is not None and seen > cap:
                    raise body_too_large(cap)
            return message

        return wrapped


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _bearer(headers: dict[str, str]) -> str | None:
    """The secret of an `Authorization: Bearer ...` header, or None (Tokens.authenticate then refuses)."""
    scheme, _, secret = headers.get("authorization", "").partition(" ")
    return secret.strip() or None if scheme.lower() == "bearer" else None


async def _refuse_error(scope: Scope, receive: Receive, send: Send, e: RegistryError) -> None:
    body = e.to_dict()
    headers = {"WWW-Authenticate": "Bearer"} if e.status == 401 else None
    await _send_json(scope, receive, send, e.status, body, headers)


async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, code: str, message: str,
                  headers: dict[str, str] | None = None) -> None:
    await _send_json(scope, receive, send, status, {"error": code, "message": message, "status": status}, headers)


async def _send_json(scope: Scope, receive: Receive, send: Send, status: int, body: dict[str, Any],
                     headers: dict[str, str] | None) -> None:
    from registry.api.errors import error_response

    resp = error_response(status, body["error"], body["message"], hint=body.get("hint"),
                          context=body.get("context"), headers=headers)
    # The body was not read: the connection cannot be reused for another request.
    resp.headers["Connection"] = "close"
    await resp(scope, receive, send)


# -- the server's own limits (uvicorn) -------------------------------------------------------------
def server_config(app: Any, settings: Settings, **kw: Any) -> Any:
    """uvicorn's Config with the connection limits of `settings` (header size and timeout, keep-alive, connections)."""
    import uvicorn

    extra: dict[str, Any] = {}
    if settings.limits:
        extra = {"limit_concurrency": settings.max_connections or None, "timeout_keep_alive": settings.keep_alive_s,
                 "h11_max_incomplete_event_size": settings.max_request_header_bytes,
                 "http": header_timeout_protocol(settings.header_timeout_s)}
    return uvicorn.Config(app, **{"log_level": "warning", "access_log": False, **extra, **kw})


def header_timeout_protocol(seconds: float) -> Any:
    """uvicorn's h11 protocol, closing a connection whose request headers take longer than `seconds`.

    uvicorn times out idle keep-alive connections but not a client that sends its headers a byte
    at a time (slowloris); this arms a timer whenever the connection waits for a request and
    disarms it when the request's headers are complete.
    """
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeaderTimeoutH11Protocol(H11Protocol):
        _header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def _arm(self) -> None:
            if seconds > 0 and self._header_timer is None:
                self._header_timer = self.loop.call_later(seconds, self._headers_too_slow)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_too_slow(self) -> None:
            self._header_timer = None
            if self.cycle is None or self.cycle.response_complete:  # still waiting for a request's headers
                self.transport.close()

        def handle_events(self) -> None:
            super().handle_events()
            if self.cycle is not None and not self.cycle.response_complete:
                self._disarm()  # headers complete: the body timeout (Limits) takes over

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

    return HeaderTimeoutH11Protocol
