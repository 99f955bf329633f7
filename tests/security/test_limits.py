"""The HTTP limits (registry/api/limits.py and the uvicorn settings), against a real server on loopback.

Requests are written on raw sockets so that a test controls exactly which bytes the server has
seen: a limit that answers "before the body is read" is proved by never sending the body.
"""

from __future__ import annotations

import dataclasses
import json
import socket
import time

import pytest

from tests.factories import make_tokens


@dataclasses.dataclass
class Server:
    url: str
    host: str
    port: int
    tokens: object
    registry: object


@pytest.fixture
def serve(sqlite_registry, tiny_llama, tiny_adapter):
    """serve(**settings) -> a real uvicorn server over a registry holding team-a/bot@1, with those settings."""
    from registry.api import create_app
    from registry.demo import ServerThread

    sqlite_registry.add_base(tiny_llama, name="tiny-llama")
    sqlite_registry.push(tiny_adapter, name="team-a/bot", base="tiny-llama")
    toks = make_tokens(sqlite_registry)
    running = []

    def start(**overrides):
        settings = dataclasses.replace(sqlite_registry.settings, **overrides)
        thread = ServerThread(create_app(sqlite_registry, settings=settings))
        running.append(thread.__enter__())
        host, port = thread.sock.getsockname()[:2]
        return Server(thread.url, host, port, toks, sqlite_registry)

    yield start
    for t in running:
        t.__exit__(None, None, None)


def _connect(srv: Server) -> socket.socket:
    return socket.create_connection((srv.host, srv.port), timeout=5)


def _response(sock: socket.socket, *, timeout: float = 3.0) -> tuple[int | None, dict, bytes]:
    """(status, headers, body) of the response on `sock`; status None when none came within `timeout`."""
    sock.settimeout(timeout)
    buf = b""
    try:
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(65536)
            if not chunk:
                break
            buf += chunk
        head, _, body = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
        want = int(headers.get("content-length", "0"))
        while len(body) < want:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
    except (TimeoutError, ConnectionResetError):
        return None, {}, b""
    if not lines or not lines[0].startswith("HTTP/"):
        return None, {}, b""
    return int(lines[0].split()[1]), headers, body


def _head(method: str, path: str, *, token: str | None = None, length: int | None = None,
          chunked: bool = False, extra: str = "") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: test", "Content-Type: application/json"]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    if length is not None:
        lines.append(f"Content-Length: {length}")
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    return ("\r\n".join(lines) + "\r\n" + extra + "\r\n").encode()


EVALS = "/api/v1/adapters/team-a/bot/versions/1/evals"
TWELVE_MB = 12 * 1024 * 1024


def test_an_anonymous_write_with_a_12_mb_body_is_a_401_before_the_body_is_sent(serve):
    srv = serve()
    with _connect(srv) as s:
        s.sendall(_head("POST", EVALS, length=TWELVE_MB) + b"{" + b" " * 65536)  # 64 KB of the 12 MB
        t = time.perf_counter()
        status, headers, body = _response(s)
    assert status == 401, status  # before: the server waited for the other 11.9 MB
    assert time.perf_counter() - t < 2
    doc = json.loads(body)
    assert doc["status"] == 401 and doc["error"] and doc["message"]
    assert headers.get("www-authenticate") == "Bearer"


@pytest.mark.parametrize("token", ["junk", "revoked"])
def test_a_write_with_a_junk_or_revoked_token_is_a_401_before_the_body(serve, token):
    srv = serve()
    secret = srv.tokens.revoked if token == "revoked" else "not-a-token"
    with _connect(srv) as s:
        s.sendall(_head("PUT", "/api/v1/adapters/team-a/bot/aliases/prod", token=secret, length=TWELVE_MB))
        status, _h, body = _response(s)
    assert status == 401 and json.loads(body)["status"] == 401


def test_a_json_body_past_the_cap_is_a_413_on_its_content_length_without_reading_it(serve):
    srv = serve()
    with _connect(srv) as s:
        s.sendall(_head("POST", EVALS, token=srv.tokens.write, length=TWELVE_MB))
        status, _h, body = _response(s)
    assert status == 413, status
    doc = json.loads(body)
    assert doc["status"] == 413 and "1048576" in doc["message"]


def test_a_chunked_json_body_is_cut_off_with_413_once_it_passes_the_cap(serve):
    srv = serve(max_body_bytes=64 * 1024)
    payload = json.dumps({"metrics": {"acc": 0.5}, "details": {"x": "a" * 200_000}}).encode()
    with _connect(srv) as s:
        s.sendall(_head("POST", EVALS, token=srv.tokens.write, chunked=True))
        for i in range(0, len(payload), 16384):
            part = payload[i:i + 16384]
            try:
                s.sendall(f"{len(part):x}\r\n".encode() + part + b"\r\n")
            except (BrokenPipeError, ConnectionResetError):
                break
        else:
            s.sendall(b"0\r\n\r\n")
        status, _h, body = _response(s)
    assert status == 413, status  # before: 201, the whole body read and stored
    assert json.loads(body)["status"] == 413
    assert len(srv.registry.show("team-a/bot@1").evals) == 0


def test_a_json_body_under_the_cap_still_works(serve):
    import httpx

    srv = serve()
    r = httpx.post(srv.url + EVALS, json={"metrics": {"acc": 0.5}},
                   headers={"Authorization": f"Bearer {srv.tokens.write}"})
    assert r.status_code == 201, r.text


def test_past_the_concurrency_limit_requests_are_503_and_healthz_still_answers(serve):
    srv = serve(max_concurrent_requests=1)
    hold = _connect(srv)
    try:  # one request in flight: its body never comes
        hold.sendall(_head("POST", EVALS, token=srv.tokens.write, length=100))
        time.sleep(0.3)
        with _connect(srv) as s:
            s.sendall(_head("GET", "/api/v1/adapters"))
            status, headers, body = _response(s)
        assert status == 503, status
        assert json.loads(body)["status"] == 503 and headers.get("retry-after") == "1"
        with _connect(srv) as s:
            s.sendall(_head("GET", "/api/v1/healthz"))
            assert _response(s)[0] == 200
    finally:
        hold.close()
    time.sleep(0.3)
    with _connect(srv) as s:  # the slot is free again once the held request ended
        s.sendall(_head("GET", "/api/v1/adapters"))
        assert _response(s)[0] == 200


def test_a_body_that_stalls_is_answered_408(serve):
    srv = serve(body_timeout_s=0.5)
    with _connect(srv) as s:
        s.sendall(_head("POST", EVALS, token=srv.tokens.write, length=100) + b'{"metrics": ')
        t = time.perf_counter()
        status, _h, body = _response(s, timeout=5)
    assert status == 408, status
    assert time.perf_counter() - t < 3 and json.loads(body)["status"] == 408


def test_a_client_that_sends_its_headers_too_slowly_is_disconnected(serve):
    srv = serve(header_timeout_s=0.5)
    with _connect(srv) as s:
        s.sendall(b"GET /api/v1/adapters HTTP/1.1\r\nHost: te")
        t = time.perf_counter()
        s.settimeout(5)
        try:
            assert s.recv(1024) == b""  # closed by the server
        except ConnectionResetError:
            pass
        assert time.perf_counter() - t < 3


def test_request_headers_past_the_setting_are_refused(serve):
    srv = serve(max_request_header_bytes=4096)
    with _connect(srv) as s:  # 6 KB of headers that are not finished yet: h11 buffers at most 4 KB of them
        s.sendall(f"GET /api/v1/adapters HTTP/1.1\r\nHost: t\r\nX-Big: {'a' * 6000}".encode())
        time.sleep(0.2)
        try:
            s.sendall(b"\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        status, _h, _b = _response(s)
    assert status in (None, 400, 431)  # refused: never a 200
    with _connect(srv) as s:
        s.sendall(_head("GET", "/api/v1/adapters", extra=f"X-Ok: {'a' * 1000}\r\n"))
        assert _response(s)[0] == 200


def test_the_limits_switch_turns_the_middleware_into_a_pass_through(serve):
    srv = serve(limits=False, max_concurrent_requests=1, max_body_bytes=10)
    import httpx

    r = httpx.post(srv.url + EVALS, json={"metrics": {"acc": 0.5}},
                   headers={"Authorization": f"Bearer {srv.tokens.write}"})
    assert r.status_code == 201, r.text


def test_the_token_checked_before_the_body_is_left_in_request_state(sqlite_registry):
    import asyncio

    from registry.api.limits import Limits

    secret = sqlite_registry.tokens.create("ci", scope="write").token
    seen = {}

    async def inner(scope, receive, send):
        seen["token"] = scope["state"]["token"]
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def call():
        scope = {"type": "http", "method": "POST", "path": "/api/v1/bases", "state": {},
                 "headers": [(b"authorization", f"Bearer {secret}".encode()), (b"content-length", b"2")]}
        sent = []

        async def receive():
            return {"type": "http.request", "body": b"{}", "more_body": False}

        async def send(message):
            sent.append(message)

        await Limits(inner, sqlite_registry)(scope, receive, send)
        return sent

    sent = asyncio.run(call())
    assert sent[0]["status"] == 204 and seen["token"].name == "ci" and seen["token"].scope == "write"


def test_the_limit_settings_come_from_the_environment():
    from registry.settings import Settings

    s = Settings.from_env(env={"ADAPTER_REGISTRY_MAX_BODY_BYTES": "2048", "ADAPTER_REGISTRY_BODY_TIMEOUT_S": "1.5",
                               "ADAPTER_REGISTRY_LIMITS": "off", "ADAPTER_REGISTRY_MAX_METRICS_PER_EVAL": "7",
                               "ADAPTER_REGISTRY_TEMP_MAX_AGE_S": "60"})
    assert (s.max_body_bytes, s.body_timeout_s, s.limits, s.max_metrics_per_eval, s.temp_max_age_s) == (
        2048, 1.5, False, 7, 60.0)
    d = Settings()
    assert (d.limits, d.max_body_bytes, d.max_concurrent_requests, d.max_metrics_per_eval) == (True, 1 << 20, 64, 2000)
