"""Queue throughput, behind bench/queue.py: claims/s with 1, 2 and 4 workers on SQLite and PostgreSQL.

    .venv/bin/python bench/queue.py --jobs 2000 --workers 1,2,4 \
        --pg postgresql+psycopg://postgres@127.0.0.1:5432/test

Each run starts from a fresh catalog holding `--jobs` queued noop jobs; the worker processes
(multiprocessing spawn, started together on a barrier) loop on queue.claim, and with --cycle also
queue.finish, until nothing is left. Prints one line per (backend, workers) and a Markdown table.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _worker(url: str, barrier, cycle: bool, out) -> None:
    from registry.db import Database
    from registry.jobs import queue

    db = Database(url)
    wid = f"bench-{uuid.uuid4().hex[:8]}"
    n = 0
    barrier.wait()
    t0 = time.perf_counter()
    while (job := queue.claim(db, wid, lease_s=300)) is not None:
        if cycle:
            queue.finish(db, queue.Lease(job.id, job.attempt, wid), {})
        n += 1
    out.put((n, time.perf_counter() - t0))
    db.dispose()


def run(url: str, jobs: int, workers: int, cycle: bool) -> dict:
    from registry.catalog import models as M
    from registry.db import Database

    db = Database(url)
    with db.write() as s:
        s.add_all([M.Job(kind="noop", payload={}) for _ in range(jobs)])
    db.dispose()
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(workers + 1), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(url, barrier, cycle, out)) for _ in range(workers)]
    for p in procs:
        p.start()
    barrier.wait()
    t0 = time.perf_counter()
    results = [out.get(timeout=600) for _ in procs]
    wall = time.perf_counter() - t0
    for p in procs:
        p.join()
    claimed = sum(n for n, _ in results)
    assert claimed == jobs, f"claimed {claimed} of {jobs}"
    return {"claims": claimed, "seconds": wall, "per_s": claimed / wall, "per_worker": sorted(n for n, _ in results)}


def fresh(backend: str, pg: str | None, tmp: Path) -> tuple[str, callable]:
    from registry import migrate
    from registry.db import make_engine

    if backend == "sqlite":
        url = f"sqlite:///{tmp / f'q-{uuid.uuid4().hex[:6]}.db'}"
        cleanup = lambda: None  # noqa: E731
    else:
        from sqlalchemy import create_engine
        from sqlalchemy.engine import make_url

        name = f"ar_bench_{uuid.uuid4().hex[:8]}"
        admin = create_engine(pg, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.exec_driver_sql(f'CREATE DATABASE "{name}"')
        url = make_url(pg).set(database=name).render_as_string(hide_password=False)

        def cleanup():
            with admin.connect() as c:
                c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    eng = make_engine(url)
    migrate.upgrade(eng)
    eng.dispose()
    return url, cleanup


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=2000)
    ap.add_argument("--workers", default="1,2,4")
    ap.add_argument("--pg", default=None, help="PostgreSQL server URL (a scratch database is created in it)")
    ap.add_argument("--cycle", action="store_true", help="claim and finish (two transactions per job)")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as t:
        for backend in ["sqlite"] + (["postgresql"] if args.pg else []):
            for w in [int(x) for x in args.workers.split(",")]:
                url, cleanup = fresh(backend, args.pg, Path(t))
                try:
                    r = run(url, args.jobs, w, args.cycle)
                finally:
                    cleanup()
                print(f"{backend:10} workers={w} {r['per_s']:8.0f} {'jobs' if args.cycle else 'claims'}/s "
                      f"({r['claims']} in {r['seconds']:.2f}s, per worker {r['per_worker']})", flush=True)
                rows.append((backend, w, r))
    what = "claim+finish/s" if args.cycle else "claims/s"
    print(f"\n| backend | workers | {what} | per-worker split |\n|---|---|---|---|")
    for backend, w, r in rows:
        print(f"| {backend} | {w} | {r['per_s']:.0f} | {r['per_worker']} |")


if __name__ == "__main__":
    main()
