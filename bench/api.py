"""Benchmark: the HTTP API's search and show under concurrent load, over loopback, from a second process.

    .venv/bin/python bench/api.py                                   # 10,000 versions, 16 connections, 10 s per endpoint
    .venv/bin/python bench/api.py --concurrency 1,4,16 --endpoints search,show --root /work/main --root . --root .@2
    .venv/bin/python bench/api.py --versions 100000 --evals 500000 --concurrency 32 --duration 20
    .venv/bin/python bench/api.py --db postgresql+psycopg://postgres@127.0.0.1:5432/test
    .venv/bin/python bench/api.py --concurrency 4 --endpoints search --root .@2 --root .@2~nocache --write-rate 1

The catalog is the synthetic one of bench/lookup.py (bench/_lookup_data.py: skewed bases, ~20
versions per adapter, evals, aliases), bulk-loaded into a migrated SQLite file (or a fresh
PostgreSQL database). Each server is `registry.demo.serve` (what `adapter-registry serve` runs:
the app, its limits, uvicorn) in its own process, with the code of a checkout: `--root PATH`
(repeatable; `PATH@N`: `serve --workers N`, a tree that has it; `~nocache`: without the response
cache, response_cache_bytes=0); all of them serve the same
catalog and are measured interleaved (for each concurrency and endpoint, one tree after the
other), so a busy machine weighs on each alike. This process is the load: an asyncio httpx client
keeping --concurrency requests in flight on keep-alive connections for --duration seconds per
endpoint (after a 1 s warm-up), with parameters drawn like bench/lookup.py draws them; with
--write-rate R another process commits R evaluations a second meanwhile (each commit makes every
server's kept answers stale). Reported
per endpoint, concurrency and tree: requests per second, p50 / p95 / p99 latency (client-side,
request sent to body read), non-2xx answers, and the server's CPU time per request (its processes'
user + system time over the run, warm-up included, divided by the requests: the figure a loaded
machine distorts least), plus the load average. Results: a table on stdout and
bench/results/api-<timestamp>.json (git-ignored).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
# bench/ holds queue.py, which would shadow the standard library's `queue` (asyncio needs it).
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(ROOT))


def _lookup_data():
    import importlib.util

    spec = importlib.util.spec_from_file_location("_lookup_data", HERE / "_lookup_data.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["_lookup_data"] = mod
    spec.loader.exec_module(mod)
    return mod

RESULTS = ROOT / "bench" / "results"
ENDPOINTS = {
    "search": "GET /api/v1/adapters?base=B&limit=20 (newest 20 of a base)",
    "search_metric": "GET /api/v1/adapters?base=B&max_rank=R&metric=acc>=T&sort=metric:acc&limit=20",
    "show": "GET /api/v1/adapters/{name}/versions/{n} (full detail)",
}


# -- the server process ---------------------------------------------------------------------------
def serve(db: str, home: str, root: str, workers: int, settings: dict | None = None) -> None:
    """`adapter-registry serve` over `db` on 127.0.0.1:<free port> with the code of the tree at `root`
    (registry.demo.serve: the same app, limits and uvicorn settings) and these settings on top of
    the defaults (`nocache`: response_cache_bytes=0); it prints its URL on stderr."""
    sys.path.insert(0, root)
    for name in [m for m in sys.modules if m == "registry" or m.startswith("registry.")]:
        del sys.modules[name]
    from registry.app import Registry
    from registry.demo import serve as run_server
    from registry.settings import Settings

    reg = Registry(Settings.from_env(env={}, db=db, home=Path(home), store=str(Path(home) / "store"), actor="bench",
                                     **(settings or {})))
    kw = {"workers": workers} if workers > 1 else {}  # trees from before --workers serve in one process
    run_server(reg, host="127.0.0.1", port=0, **kw)


# -- the load --------------------------------------------------------------------------------------
def paths(ds, endpoint: str, n: int, seed: int) -> list[str]:
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        base = quote(rnd.choices(ds.base_names, ds.base_weights)[0], safe="")
        if endpoint == "search":
            out.append(f"/api/v1/adapters?base={base}&limit=20")
        elif endpoint == "search_metric":
            out.append(f"/api/v1/adapters?base={base}&max_rank={rnd.choice((8, 16, 16, 32))}"
                       f"&metric={quote('acc>=' + str(rnd.choice((0.55, 0.6, 0.65, 0.7))))}&sort=metric:acc&limit=20")
        else:
            a = rnd.randrange(len(ds.adapter_names))
            out.append(f"/api/v1/adapters/{quote(ds.adapter_names[a], safe='/')}/versions/"
                       f"{rnd.randint(1, ds.adapter_versions[a])}")
    return out


async def load(url: str, todo: list[str], *, concurrency: int, duration: float, warmup: float) -> dict:
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    lat: list[float] = []
    errors: dict[int, int] = {}
    counter = 0
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        t_start = time.perf_counter()
        t_measure = t_start + warmup
        t_end = t_measure + duration

        async def one() -> None:
            nonlocal counter
            while True:
                t0 = time.perf_counter()
                if t0 >= t_end:
                    return
                path = todo[counter % len(todo)]
                counter += 1
                r = await client.get(path)
                await r.aread()
                t1 = time.perf_counter()
                if t0 >= t_measure and t1 <= t_end:
                    lat.append(t1 - t0)
                    if r.status_code >= 300:
                        errors[r.status_code] = errors.get(r.status_code, 0) + 1

        await asyncio.gather(*(one() for _ in range(concurrency)))
    lat.sort()
    q = statistics.quantiles(lat, n=100) if len(lat) >= 2 else [float("nan")] * 99
    return {"requests": len(lat), "rps": len(lat) / duration, "p50_ms": q[49] * 1000, "p95_ms": q[94] * 1000,
            "p99_ms": q[98] * 1000, "mean_ms": statistics.fmean(lat) * 1000 if lat else float("nan"),
            "non_2xx": errors}


# -- setup -------------------------------------------------------------------------------------------
def catalog(db: str | None, n_versions: int, n_evals: int, work: Path):
    from registry import migrate
    from registry.db import make_engine

    D = _lookup_data()
    ds = D.generate(n_versions, n_evals)
    if db is None:
        path = work / f"api-{n_versions}-{n_evals}.db"
        url = f"sqlite:///{path}"
        if path.exists():
            return ds, url
    else:
        import uuid

        from sqlalchemy import create_engine
        from sqlalchemy.engine import make_url

        name = f"ar_api_bench_{uuid.uuid4().hex[:8]}"
        admin = create_engine(db, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.exec_driver_sql(f'CREATE DATABASE "{name}"')
        admin.dispose()
        url = make_url(db).set(database=name).render_as_string(hide_password=False)
    eng = make_engine(url)
    migrate.upgrade(eng)
    eng.dispose()
    D.load(url, D.catalog_tables(ds))
    return ds, url


def machine() -> dict:
    info = {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return info


def write_load(db: str, home: str, rate: float) -> None:
    """Commit `rate` evaluations a second (each a new current value of `acc` for a random version),
    through the registry's Python API, until killed: a catalog that changes while it is read."""
    from registry.app import Registry
    from registry.settings import Settings

    reg = Registry(Settings.from_env(env={}, db=db, home=Path(home), store=str(Path(home) / "store"),
                                     actor="bench-writer"))
    from sqlalchemy import text

    with reg.db.read() as s:
        refs = [f"{n}@{v}" for n, v in s.execute(text(
            "SELECT a.name, v.version FROM adapter_versions v JOIN adapters a ON a.id = v.adapter_id"))]
    rnd = random.Random(3)
    print("ready", flush=True)
    t_next = time.perf_counter()
    done = 0
    signal.signal(signal.SIGINT, lambda *_: (print(f"writes: {done}", file=sys.stderr, flush=True), os._exit(0)))
    while True:
        reg.add_eval(rnd.choice(refs), {"acc": round(rnd.random(), 3)}, source="bench")
        done += 1
        t_next += 1 / rate
        time.sleep(max(0.0, t_next - time.perf_counter()))


def start_server(url: str, root: Path, workers: int, settings: dict | None = None) -> tuple[subprocess.Popen, str]:
    home = tempfile.mkdtemp(prefix="ar-api-bench-")
    server = subprocess.Popen([sys.executable, __file__, "--serve", url, home, str(root), str(workers),
                               json.dumps(settings or {})],
                              stderr=subprocess.PIPE, text=True, cwd=root)
    assert server.stderr is not None
    for line in server.stderr:
        if " at http://" in line:
            base = line.split(" at ", 1)[1].split()[0].rstrip("/")
            break
    else:
        raise SystemExit(f"the server of {root} did not start (exit {server.wait()})")
    threading.Thread(target=server.stderr.read, daemon=True).start()  # keep its pipe drained
    import httpx

    for _ in range(100):
        try:
            httpx.get(base + "/api/v1/healthz", timeout=1)
            break
        except httpx.TransportError:
            time.sleep(0.1)
    return server, base


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of `pid` and its descendants (Linux /proc; 0 elsewhere): what a request
    costs the server, a figure a busy machine distorts far less than req/s."""
    total = 0.0
    todo = [pid]
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            todo += [int(c) for c in Path(f"/proc/{p}/task/{p}/children").read_text().split()]
        except (OSError, IndexError, ValueError):
            pass
    return total


def parse_root(text: str, default_workers: int) -> tuple[str, Path, int, dict]:
    """PATH, PATH@WORKERS, either with ~nocache (no response cache) -> (label, path, workers, settings)."""
    nocache = "~nocache" in text
    path, _, n = text.replace("~nocache", "").partition("@")
    workers = int(n) if n else default_workers
    label = f"{Path(path).resolve().name}" + (f" x{workers}" if workers > 1 else "") + (" nocache" if nocache else "")
    return label, Path(path).resolve(), workers, {"response_cache_bytes": 0} if nocache else {}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--versions", type=int, default=10_000)
    ap.add_argument("--evals", type=int, default=50_000)
    ap.add_argument("--concurrency", default="16", help="comma-separated: each is measured (1,4,16)")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds measured per endpoint")
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--db", help="a PostgreSQL server URL (default: an SQLite file)")
    ap.add_argument("--endpoints", default=",".join(ENDPOINTS))
    ap.add_argument("--workers", type=int, default=1, help="server processes (`serve --workers`) for a --root "
                    "without @N")
    ap.add_argument("--root", action="append", default=[], metavar="PATH[@N]",
                    help="a checkout whose code serves (repeatable: measured interleaved, same catalog); @N: "
                         "its server processes; ~nocache: response_cache_bytes=0; default: this checkout")
    ap.add_argument("--write-rate", type=float, default=0.0, help="commits per second into the catalog while it "
                    "is measured (a process adding evals), so that cached answers go stale")
    ap.add_argument("--rounds", type=int, default=1, help="repeat the interleaved measurements")
    ap.add_argument("--serve", nargs=5, metavar=("DB", "HOME", "ROOT", "WORKERS", "SETTINGS"), help=argparse.SUPPRESS)
    ap.add_argument("--write", nargs=3, metavar=("DB", "HOME", "RATE"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve:
        db, home, root, workers, settings = args.serve
        serve(db, home, root, int(workers), json.loads(settings))
        return 0
    if args.write:
        write_load(args.write[0], args.write[1], float(args.write[2]))
        return 0

    RESULTS.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    ds, url = catalog(args.db, args.versions, args.evals, RESULTS)
    print(f"catalog: {ds.n_versions:,} versions, {ds.n_evals:,} evals on {url.split('://')[0]} "
          f"({time.perf_counter() - t0:.1f} s)", file=sys.stderr)
    roots = [parse_root(r, args.workers) for r in (args.root or [str(ROOT)])]
    servers = []
    writer: subprocess.Popen | None = None
    rows = []
    try:
        bases = {}
        for label, root, workers, settings in roots:
            server, bases[label] = start_server(url, root, workers, settings)
            servers.append(server)
        if args.write_rate:
            w_home = tempfile.mkdtemp(prefix="ar-api-w-")
            w_log = open(Path(w_home) / "writer.log", "w+")  # noqa: SIM115  (read when it stops)
            writer = subprocess.Popen([sys.executable, __file__, "--write", url, w_home, str(args.write_rate)],
                                      cwd=ROOT, stdout=subprocess.PIPE, stderr=w_log, text=True)
            t_writes = time.perf_counter()
            assert writer.stdout is not None
            if writer.stdout.readline().strip() != "ready":
                raise SystemExit(f"the writer did not start (exit {writer.wait()})")
            t_writes = time.perf_counter()  # its refs are loaded: the clock starts now
        for rnd in range(args.rounds):
            for conc in (int(c) for c in str(args.concurrency).split(",") if c):
                for i, ep in enumerate(e for e in args.endpoints.split(",") if e):
                    todo = paths(ds, ep, 5000, seed=11 + i)
                    for (label, _root, workers, _settings), server in zip(roots, servers):
                        cpu0, own0 = cpu_seconds(server.pid), time.process_time()
                        res = asyncio.run(load(bases[label], todo, concurrency=conc, duration=args.duration,
                                               warmup=args.warmup))
                        if writer is not None and writer.poll() is not None:
                            w_log.seek(0)
                            raise SystemExit(f"the writer stopped (exit {writer.returncode}): {w_log.read()[-2000:]}")
                        n = res["requests"] * (args.duration + args.warmup) / args.duration  # warm-up included
                        res["server_cpu_ms"] = (cpu_seconds(server.pid) - cpu0) / n * 1000 if n else float("nan")
                        res["client_cpu_ms"] = (time.process_time() - own0) / n * 1000 if n else float("nan")
                        rows.append({"endpoint": ep, "what": ENDPOINTS[ep], "tree": label, "workers": workers,
                                     "concurrency": conc, "round": rnd, "load": os.getloadavg()[0], **res})
                        print(f"{ep:<14} c={conc:<3} {label:<18} {res['rps']:7.0f} req/s  p50 {res['p50_ms']:6.1f} "
                              f"ms  p95 {res['p95_ms']:6.1f} ms  p99 {res['p99_ms']:6.1f} ms  server CPU "
                              f"{res['server_cpu_ms']:.2f} ms/req  load "
                              f"{os.getloadavg()[0]:.1f}  non-2xx {res['non_2xx'] or 0}", file=sys.stderr)
    finally:
        if writer is not None:
            writer.send_signal(signal.SIGINT)
            try:
                writer.wait(15)
            except subprocess.TimeoutExpired:
                writer.kill()
            w_log.seek(0)
            said = w_log.read()
            n_written = next((int(w.split()[1]) for w in said.splitlines() if w.startswith("writes: ")), 0)
            elapsed = time.perf_counter() - t_writes
            print(f"writer: {n_written} commits in {elapsed:.0f} s ({n_written / elapsed:.1f}/s)", file=sys.stderr)
            for r in rows:
                r["write_rate_achieved"] = n_written / elapsed
        for server in servers:
            server.send_signal(signal.SIGINT)
        for server in servers:
            try:
                server.wait(15)
            except subprocess.TimeoutExpired:
                server.kill()
    out = {"args": {k: v for k, v in vars(args).items() if k != "serve"}, "db": url.split("://")[0],
           "versions": ds.n_versions, "evals": ds.n_evals, "machine": machine(), "results": rows,
           "command": "python bench/api.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    path = RESULTS / f"api-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(out, indent=2))
    print("\n| endpoint | conc. | tree | req/s | p50 ms | p95 ms | p99 ms | server CPU ms/req | non-2xx |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        bad = sum(r["non_2xx"].values()) if r["non_2xx"] else 0
        print(f"| {r['endpoint']} | {r['concurrency']} | {r['tree']} | {r['rps']:.0f} | {r['p50_ms']:.1f} | "
              f"{r['p95_ms']:.1f} | {r['p99_ms']:.1f} | {r['server_cpu_ms']:.2f} | {bad} |")
    print(f"\nresults: {path}", file=sys.stderr)
    if args.db:
        from sqlalchemy import create_engine
        from sqlalchemy.engine import make_url

        admin = create_engine(args.db, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')
        admin.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
