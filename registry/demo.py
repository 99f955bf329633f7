"""The `make run` demo: seed a small catalog when it is empty, then serve it with a worker.

Everything is built locally (a tiny random Llama and LoRA adapters from registry.testing.tiny):
nothing is downloaded. Seeding takes a few seconds on a laptop CPU.
"""

from __future__ import annotations

import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from registry.errors import InvalidInput

ADAPTERS: list[tuple[str, str, dict[str, str], list[tuple[int, list[str] | None, int, dict[str, float], bool]]]] = [
    # name, versions: (rank, targets, seed, metrics, trainer folder?)
    ("team-a/support-bot", "Answers support tickets.", {"task": "support"}, [
        (4, ["q_proj", "v_proj"], 1, {"acc": 0.58, "f1": 0.52}, False),
        (8, ["q_proj", "v_proj"], 2, {"acc": 0.64, "f1": 0.60}, False),
        (8, ["q_proj", "k_proj", "v_proj", "o_proj"], 3, {"acc": 0.69, "f1": 0.63}, True),
    ]),
    ("team-a/summarizer", "Summarises long threads.", {"task": "summarize"}, [
        (16, None, 4, {"rouge_l": 0.31}, False),
        (16, None, 5, {"rouge_l": 0.35}, True),
    ]),
    ("team-b/sql-helper", "Writes SQL from questions.", {"task": "sql"}, [
        (4, ["q_proj", "v_proj", "up_proj", "down_proj"], 6, {"exact_match": 0.41, "acc": 0.55}, False),
        (8, ["q_proj", "v_proj", "up_proj", "down_proj"], 7, {"exact_match": 0.47, "acc": 0.61}, False),
    ]),
]


def is_empty(registry) -> bool:
    return not registry.search(limit=1, include_deprecated=True).items


def seed(registry, *, work_dir: Path | None = None) -> Iterator[str]:
    """Build and register the demo catalog; yields one line per step (for the CLI to print)."""
    import warnings

    from registry.testing.tiny import build_adapter, build_llama, write_trainer_output

    try:  # the tiny models load in milliseconds: no progress bars or deprecation noise in the demo
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except ImportError:
        pass
    warnings.filterwarnings("ignore", category=FutureWarning)
    work = Path(work_dir or registry.settings.home / "demo")
    base_dir = work / "tiny-llama"
    if not (base_dir / "config.json").is_file():
        build_llama(base_dir)
    b = registry.add_base(base_dir, name="tiny-llama", revision="demo")
    yield f"base model {b.ref} ({b.param_count:,} params)"
    for name, description, tags, versions in ADAPTERS:
        for i, (r, targets, seed_, metrics, trainer) in enumerate(versions, start=1):
            folder = work / "adapters" / name.replace("/", "__") / f"v{i}"
            if not (folder / "adapter_config.json").is_file():
                build_adapter(base_dir, folder, r=r, lora_alpha=2 * r, seed=seed_, target_modules=targets)
            src = folder
            if trainer:
                src = work / "trainer" / name.replace("/", "__") / f"v{i}"
                if not src.is_dir():
                    write_trainer_output(folder, src, steps=(10, 20, 30))
            v = registry.push(src, name=name, base=b.ref, tags=tags, description=description)
            registry.add_eval(v.ref, metrics, dataset=f"demo-{tags['task']}", split="test")
            yield f"{v.ref} r={v.rank} {', '.join(f'{k}={x}' for k, x in metrics.items())}"
    yield from _release(registry)
    yield from _merge_and_publish(registry, work)


def _release(registry) -> Iterator[str]:
    """Aliases, and a protected production alias with a metric gate."""
    registry.release.protect_alias("team-a/support-bot", "production", require_metrics=["acc>=0.6"])
    for name, alias, version in (("team-a/support-bot", "production", 2), ("team-a/support-bot", "staging", 3),
                                 ("team-a/summarizer", "production", 2), ("team-b/sql-helper", "production", 2)):
        registry.release.set_alias(name, alias, version, reason="demo")
        yield f"alias {name}@{alias} -> v{version}"


def _merge_and_publish(registry, work: Path) -> Iterator[str]:
    """Verify, merge and publish team-a/support-bot@2 to a local folder next to the home (in this process)."""
    ref = "team-a/support-bot@2"
    job = registry.jobs.verify(ref, inline=True)
    yield f"verified {ref}: {job.state}" + (f" ({job.error})" if job.error else "")
    m = registry.merge(ref)
    yield f"merged {ref} -> artifact #{m.id} ({m.dtype}, {m.engine})"
    # Publish targets are never inside the registry's own home, store or cache: a sibling of home.
    home = registry.settings.home
    target = home.parent / f"{home.name}-published" / "support-bot-v2"
    job = registry.jobs.publish(ref, to=f"dir://{target}", force=job.state != "succeeded", inline=True)
    yield f"published {ref} to {target}: {job.state}" + (f" ({job.error})" if job.error else "")


def start_worker(registry):
    """A job worker in a daemon thread; returns a function that stops it."""
    from registry.jobs.worker import Worker

    worker = Worker(registry.core, device="cpu", poll_s=0.5)
    thread = threading.Thread(target=worker.run, name="worker", daemon=True)
    thread.start()

    def stop() -> None:
        worker.request_stop(now=True)
        thread.join(timeout=15)

    return stop


BACKLOG = 2048  # connections the kernel queues for the server(s) to accept


def listening_socket(host: str, port: int) -> socket.socket:
    """A bound, listening TCP socket for uvicorn (port 0: a free one)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit this: without it a keep-alive client waits ~40 ms per request
    # (Nagle holds the response body until the delayed ACK of its headers).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(BACKLOG)  # connections queue from the moment the URL is printed, before uvicorn starts
    return sock


def serve(registry, *, host: str = "127.0.0.1", port: int = 8080, worker: bool = False, workers: int = 1) -> None:
    """Serve the API and pages until Ctrl-C (then stop the worker and close the registry).

    `workers` > 1: that many server processes accept on one listening socket (forked here, each with
    its own Registry over the same settings: its own database engine and store clients; SQLite
    readers do not block each other in WAL mode). The job worker, if any, runs in this process.
    """
    import uvicorn

    from registry.api import create_app
    from registry.api.limits import server_config

    if workers < 1:
        raise InvalidInput(f"--workers must be at least 1, not {workers}")
    sweep_at_start(registry)
    sock = listening_socket(host, port)
    actual = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    procs = f", {workers} server processes" if workers > 1 else ""
    print(f"adapter-registry serving {registry.settings.db_url} at http://{shown}:{actual}/  (Ctrl-C stops{procs})",
          file=sys.stderr, flush=True)
    if workers > 1:
        try:
            _serve_processes(registry, sock, workers, worker)
        finally:
            sock.close()
            registry.close()
        print("adapter-registry stopped", file=sys.stderr, flush=True)
        return
    app = create_app(registry)
    stop_worker = start_worker(registry) if worker else None
    if worker and stop_worker is None:
        print("  (no job worker: the job queue is not in this build)", file=sys.stderr, flush=True)
    server = uvicorn.Server(server_config(app, registry.settings))
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass  # uvicorn re-raises the Ctrl-C it handled; the server has already shut down cleanly
    finally:
        if callable(stop_worker):
            stop_worker()
        sock.close()
        registry.close()
    print("adapter-registry stopped", file=sys.stderr, flush=True)


def _serve_processes(registry, sock: socket.socket, n: int, worker: bool) -> None:
    """Fork `n` uvicorn servers on `sock`; wait until Ctrl-C, SIGTERM or a server's exit; stop them all."""
    import os
    import signal
    import time

    def stop(_signum, _frame):
        raise KeyboardInterrupt

    # before the forks: a SIGTERM or SIGHUP from then on stops the servers too, never orphans them
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGHUP)}
    registry.db.dispose()  # no pooled connection may be shared with the children
    pids: list[int] = []
    stop_worker = None
    try:
        pids += [_fork_server(registry.settings, type(registry), sock) for _ in range(n)]
        stop_worker = start_worker(registry) if worker else None  # after the forks: a child gets no thread
        # wait for the server processes only: the job worker's own subprocesses (engine runners)
        # are its business, and a bare os.wait() would take their exit statuses from it
        while True:
            done = next(((p, st) for p in pids for p, st in [os.waitpid(p, os.WNOHANG)] if p), None)
            if done is not None:  # a server that exits on its own (failed to start, crashed) ends all
                pids.remove(done[0])
                print(f"adapter-registry: server process {done[0]} exited ({done[1]}); stopping",
                      file=sys.stderr, flush=True)
                break
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGTERM)  # uvicorn's graceful shutdown (a Ctrl-C reached them already)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 15
        while pids:
            pid, _ = os.waitpid(pids[0], os.WNOHANG)
            if pid:
                pids.pop(0)
            elif time.monotonic() > deadline:
                os.kill(pids.pop(0), signal.SIGKILL)
            else:
                time.sleep(0.05)
        if callable(stop_worker):
            stop_worker()


def _fork_server(settings, registry_type, sock: socket.socket) -> int:
    """A child process serving `sock` with its own Registry(settings); returns its pid (in the parent)."""
    import os

    parent = os.getpid()
    pid = os.fork()
    if pid:
        return pid
    code = 0
    try:
        _die_with_parent(parent)
        from registry.api import create_app
        from registry.api.limits import server_config

        child = registry_type(settings)
        try:
            _fair_server(sock, server_config(create_app(child), settings)).run()
        finally:
            child.close()
    except KeyboardInterrupt:
        pass
    except BaseException:  # noqa: BLE001 - reported, then this process ends with an error status
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        sys.stderr.flush()
        os._exit(code)


def _die_with_parent(parent: int) -> None:
    """In a forked server: get SIGTERM (uvicorn's graceful stop) when the parent dies, however it
    dies (SIGKILL included), so no server is left holding the port (Linux prctl PR_SET_PDEATHSIG;
    elsewhere a thread polls the parent's pid)."""
    import os
    import signal
    import threading
    import time

    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(1, signal.SIGTERM, 0, 0, 0) != 0:  # 1 = PR_SET_PDEATHSIG
            raise OSError(ctypes.get_errno(), "prctl")
    except (OSError, AttributeError):
        def watch() -> None:
            while os.getppid() == parent:
                time.sleep(0.5)
            os.kill(os.getpid(), signal.SIGTERM)

        threading.Thread(target=watch, name="parent-watch", daemon=True).start()
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def _fair_server(sock: socket.socket, config):
    """A uvicorn server on `sock` shared with other processes (FairServer); uvicorn is imported here, late."""
    import asyncio

    import uvicorn

    class FairServer(uvicorn.Server):
        """uvicorn, accepting from a socket that several processes share so that connections spread
        over them: asyncio's own accept takes every queued connection at once, so one process would
        take all of a client's keep-alive connections. This one takes one, then waits (longer the
        more connections it already serves, at most 50 ms) while the others take the next."""

        def __init__(self, sock: socket.socket, config: uvicorn.Config):
            super().__init__(config)
            self.sock = sock

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=[])  # the app's lifespan, no listener of uvicorn's own
            loop = asyncio.get_running_loop()
            config, sock = self.config, self.sock
            sock.setblocking(False)
            pending: set[asyncio.Task[Any]] = set()

            def protocol() -> asyncio.Protocol:
                return config.http_protocol_class(config=config, server_state=self.server_state,  # type: ignore[call-arg]
                                                  app_state=self.lifespan.state)

            def accept() -> None:
                try:
                    conn, _ = sock.accept()
                except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                    return
                loop.remove_reader(sock)
                task = loop.create_task(loop.connect_accepted_socket(protocol, conn))
                pending.add(task)  # the loop keeps only a weak reference to a task
                task.add_done_callback(pending.discard)
                loop.call_later(min(0.002 * len(self.server_state.connections), 0.05), resume)

            def resume() -> None:
                if not self.should_exit:
                    loop.add_reader(sock, accept)

            loop.add_reader(sock, accept)

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            asyncio.get_running_loop().remove_reader(self.sock)
            await super().shutdown(sockets)

    return FairServer(sock, config)


def sweep_at_start(registry) -> int:
    """Remove temp files that killed pushes and uploads left (registry.release.gc.sweep_temp); how many went."""
    from registry.release.gc import sweep_temp

    s = registry.settings
    removed = sweep_temp(registry.store, home=s.home, older_than_s=s.temp_max_age_s)
    if removed:
        print(f"removed {removed} stale temp file(s) of killed pushes or uploads", file=sys.stderr, flush=True)
    return removed


class ServerThread:
    """uvicorn on 127.0.0.1:<free port> in a daemon thread (tests and benchmarks), with the server's limits."""

    def __init__(self, app, *, host: str = "127.0.0.1", settings=None):
        import uvicorn

        from registry.api.limits import server_config

        self.sock = listening_socket(host, 0)
        self.url = f"http://{host}:{self.sock.getsockname()[1]}"
        settings = settings if settings is not None else app.state.registry.settings
        self.server = uvicorn.Server(server_config(app, settings))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> ServerThread:
        import time

        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()
