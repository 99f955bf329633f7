"""`adapter-registry serve --workers N`: N server processes on one port over one catalog (SQLite in
WAL mode, PostgreSQL), reads and writes through any of them, and Ctrl-C or SIGTERM stops them all."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.factories import bearer, cli_env, fill_registry, make_tokens, start_serving


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    if not path.exists():  # pragma: no cover - Linux only
        pytest.skip("needs /proc/PID/task/PID/children (Linux)")
    return [int(c) for c in path.read_text().split()]


def _start(settings, *args: str) -> tuple[subprocess.Popen, str]:
    p, url, lines = start_serving(["serve", "--port", "0", *args], env=cli_env(settings))
    if url is not None:
        for _ in range(200):
            try:
                httpx.get(url + "/api/v1/healthz", timeout=1)
                return p, url
            except httpx.TransportError:
                time.sleep(0.05)
    p.kill()
    pytest.fail("serve did not start:\n" + "".join(lines) + (p.stderr.read() if p.poll() is not None else ""))


def _stop(p: subprocess.Popen, sig: int) -> str:
    p.send_signal(sig)
    try:
        _, err = p.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        pytest.fail("serve --workers did not stop within 30 s")
    return err


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_serve_workers_runs_n_processes_that_share_the_catalog_and_stop_together(
        registry, settings_for, tiny_llama, tiny_adapter, tiny_adapter2, sig):
    fill_registry(registry, tiny_llama, tiny_adapter, tiny_adapter2)
    tokens = make_tokens(registry)
    p, url = _start(registry.settings, "--workers", "3")
    try:
        kids = _children(p.pid)
        assert len(kids) == 3, kids
        # Fresh connections land on whichever process accepts first: every answer must agree.
        before = {httpx.get(url + "/api/v1/adapters/team-a/bot/versions/1").json()["metrics"].get("acc")
                  for _ in range(12)}
        assert before == {0.5}
        r = httpx.post(url + "/api/v1/adapters/team-a/bot/versions/1/evals", json={"metrics": {"acc": 0.9}},
                       headers=bearer(tokens.write))
        assert r.status_code == 201, r.text
        after = [httpx.get(url + "/api/v1/adapters", params={"name": "team-a/bot", "limit": 5}).json()
                 for _ in range(12)]
        assert all({v["version"]: v["metrics"].get("acc") for v in page["items"]} == {1: 0.9, 2: 0.7}
                   for page in after)
    finally:
        err = _stop(p, sig)
    assert p.returncode == 0, err
    assert "adapter-registry stopped" in err
    for kid in kids:
        assert not Path(f"/proc/{kid}").exists() or "zombie" in Path(f"/proc/{kid}/status").read_text()


def test_serve_workers_must_be_at_least_one(sqlite_registry):
    from tests.factories import run_cli

    res = run_cli("serve", "--workers", "0", env=cli_env(sqlite_registry.settings))
    assert res.returncode == 2 and "--workers" in res.stderr, res


def _cpu(pid: int) -> int:
    return sum(int(x) for x in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[11:13])


def _wait_idle(pids: list[int], timeout: float = 60) -> None:
    """Until none of `pids` used CPU for half a second."""
    deadline = time.monotonic() + timeout
    last = [_cpu(p) for p in pids]
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = [_cpu(p) for p in pids]
        if now == last:
            return
        last = now
    pytest.fail(f"the server processes {pids} did not settle within {timeout} s")


def _sockets(pid: int) -> int:
    fds = Path(f"/proc/{pid}/fd")
    return sum(1 for fd in fds.iterdir() if _link(fd).startswith("socket:"))


def _link(path: Path) -> str:
    try:
        return str(path.readlink())
    except OSError:
        return ""


def test_serve_workers_spreads_a_clients_keep_alive_connections_over_the_processes(sqlite_registry):
    """asyncio alone accepts every queued connection in the process that wakes first: a client's
    four keep-alive connections would all land on one of two processes, and the other one idle."""
    import asyncio

    p, url = _start(sqlite_registry.settings, "--workers", "2")
    try:
        kids = _children(p.pid)
        _wait_idle(kids)  # both have started (one answering the health check says nothing of the other)
        before = {k: _sockets(k) for k in kids}

        async def four_connections() -> dict[int, int]:
            async with httpx.AsyncClient(base_url=url, limits=httpx.Limits(max_connections=4)) as c:
                async def one() -> None:
                    for _ in range(5):
                        (await c.get("/api/v1/adapters")).raise_for_status()

                await asyncio.gather(*(one() for _ in range(4)))
                return {k: _sockets(k) - before[k] for k in kids}

        for _ in range(4):  # a new client each time: its connections open together
            held = asyncio.run(four_connections())
            assert sum(held.values()) == 4, held
            assert min(held.values()) >= 1, held
            _wait_idle(kids)  # the closed connections are gone
    finally:
        _stop(p, signal.SIGINT)


def _gone(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    return not status.exists() or "zombie" in status.read_text()


def test_a_killed_parent_leaves_no_server_holding_the_port(sqlite_registry):
    """SIGKILL of `serve --workers 2` (nothing of it runs any more): its servers stop too (before:
    they were re-parented to init and kept answering on the port)."""
    p, url = _start(sqlite_registry.settings, "--workers", "2")
    kids = _children(p.pid)
    assert len(kids) == 2
    p.kill()
    p.wait(timeout=10)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not all(_gone(k) for k in kids):
        time.sleep(0.1)
    assert all(_gone(k) for k in kids), kids
    with pytest.raises(httpx.TransportError):
        httpx.get(url + "/api/v1/healthz", timeout=2)


def test_serve_waits_for_its_servers_only_and_other_children_keep_their_exit_status(sqlite_registry):
    """The parent waits for its server processes only: another child of the process (the job
    worker, which runs in it, starts engine runners) gets its own exit status and serve does not
    stop (before: os.wait() took the status, then `pids.remove` raised and serve stopped)."""
    import threading

    from registry import demo

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    seen: list[int] = []

    def other_children() -> None:
        time.sleep(1.0)  # the server process is forked by then
        for _ in range(10):
            seen.append(subprocess.run(["sh", "-c", "sleep 0.1; exit 3"], check=False).returncode)
        os.kill(os.getpid(), signal.SIGTERM)  # then stop serve, as a service manager would

    t = threading.Thread(target=other_children, daemon=True)
    t.start()
    try:
        demo._serve_processes(sqlite_registry, sock, 1, worker=False)
    finally:
        sock.close()
    t.join(timeout=10)
    assert seen == [3] * 10
