"""Benchmark: catalog lookups (filtered search, show, alias resolution) vs MLflow's model registry.

    .venv/bin/python bench/lookup.py                      # 100,000 versions / 500,000 evals, SQLite + PostgreSQL
    .venv/bin/python bench/lookup.py --quick              # ~2,000 versions, a smoke run (< 1 min)
    .venv/bin/python bench/lookup.py --backends sqlite --no-mlflow --iterations 1000

A synthetic catalog (bench/_lookup_data.py) is bulk-loaded straight into the tables that
`registry.migrate.upgrade` created (so the real migration's indexes are measured), then ANALYZEd.
The same data goes into MLflow's model registry (registered models, model versions with tags,
aliases) through its own schema (`SqlAlchemyStore` creates it). Every lookup then goes through
the public Python API, result objects included: `Registry.search/show/get` and MLflow's
`SqlAlchemyStore.search_model_versions / get_model_version / get_model_version_by_alias`, with
client-side filtering where MLflow cannot filter (numbers in tags). Both systems get the same
parameter sequence (bases drawn by popularity, varied thresholds); a sample of answers is compared.

Per operation we report p50/p95/p99 wall time of the API call, and the SQL alone: the statements
one call issued, replayed on a raw DBAPI connection (execute + fetchall), summed per call.
PostgreSQL: --pg-url names a server (default ADAPTER_REGISTRY_TEST_PG or postgres@127.0.0.1/test);
databases ar_lookup_<versions> and mlflow_lookup_<versions> are created there and dropped afterwards
(--keep keeps them and the SQLite files; --reuse skips loading when they hold the same data).
Results: a table on stdout and bench/results/lookup-<timestamp>.json (git-ignored).
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _lookup_data as D  # noqa: E402

PG_DEFAULT = os.environ.get("ADAPTER_REGISTRY_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
RESULTS = ROOT / "bench" / "results"
OPS = ("search_metric", "search_newest", "search_rank", "show", "alias")
OP_TITLES = {
    "search_metric": "base + rank<=R + acc>=T, by acc, 20",
    "search_newest": "base, newest 20",
    "search_rank": "base + rank<=R, newest 20",
    "show": "show name@N",
    "alias": "get name@alias",
}


# -- parameters ----------------------------------------------------------------------------------
def make_params(ds: D.Dataset, n: int, seed: int) -> dict[str, list[dict[str, Any]]]:
    """The same parameter sequence for every system: bases drawn by popularity, as users would ask."""
    rnd = random.Random(seed)
    base = lambda: rnd.choices(ds.base_names, ds.base_weights)[0]  # noqa: E731
    out: dict[str, list[dict[str, Any]]] = {op: [] for op in OPS}
    for _ in range(n):
        out["search_metric"].append({"base": base(), "max_rank": rnd.choice((8, 16, 16, 32)),
                                     "acc": rnd.choice((0.55, 0.6, 0.6, 0.65, 0.7))})
        out["search_newest"].append({"base": base()})
        out["search_rank"].append({"base": base(), "max_rank": rnd.choice((8, 16, 16, 32))})
        a = rnd.randrange(len(ds.adapter_names))
        out["show"].append({"name": ds.adapter_names[a], "version": rnd.randint(1, ds.adapter_versions[a])})
        name, alias = rnd.choice(ds.aliased)
        out["alias"].append({"name": name, "alias": alias})
    return out


# -- the two systems -----------------------------------------------------------------------------
def registry_ops(reg) -> dict[str, Callable[[dict], list[tuple[str, int]]]]:
    """Each op returns [(name, version)] so answers can be compared across systems."""
    def refs(page):
        return [(v.name, v.version) for v in page.items]

    return {
        "search_metric": lambda p: refs(reg.search(base=p["base"], max_rank=p["max_rank"],
                                                   metrics=[f"acc>={p['acc']}"], sort="metric:acc", limit=20)),
        "search_newest": lambda p: refs(reg.search(base=p["base"], limit=20)),
        "search_rank": lambda p: refs(reg.search(base=p["base"], max_rank=p["max_rank"], limit=20)),
        "show": lambda p: [(lambda v: (v.name, v.version))(reg.show(f"{p['name']}@{p['version']}"))],
        "alias": lambda p: [(lambda v: (v.name, v.version))(reg.get(f"{p['name']}@{p['alias']}"))],
    }


def mlflow_ops(store) -> dict[str, Callable[[dict], list[tuple[str, int]]]]:
    """The closest MLflow can do. Tag values are strings: `=`, `!=`, LIKE only, so
    rank <= R is one query per allowed rank, and acc >= T is filtered and sorted client-side."""
    newest = ["creation_timestamp DESC"]
    ml = D.mlflow_name

    def ref(mv):
        return (mv.name.replace(".", "/", 1), int(mv.version))

    def search(flt: str, n: int):
        return store.search_model_versions(filter_string=flt, max_results=n, order_by=newest)

    def q_base(b: str) -> str:
        return f"tags.base = '{b}' AND tags.deprecated = 'false'"

    def by_rank(p):
        got = []
        for r in D.RANKS:
            if r <= p["max_rank"]:
                got += search(f"{q_base(p['base'])} AND tags.rank = '{r}'", 20)
        got.sort(key=lambda mv: (mv.creation_timestamp, mv.name, int(mv.version)), reverse=True)
        return [ref(mv) for mv in got[:20]]

    def by_metric(p):
        hits = [mv for mv in search(q_base(p["base"]), 200_000)
                if int(mv.tags["rank"]) <= p["max_rank"] and "acc" in mv.tags and float(mv.tags["acc"]) >= p["acc"]]
        hits.sort(key=lambda mv: (float(mv.tags["acc"]), mv.creation_timestamp), reverse=True)
        return [ref(mv) for mv in hits[:20]]

    def one(mv):
        return [ref(mv)]

    return {
        "search_metric": by_metric,
        "search_newest": lambda p: [ref(mv) for mv in search(q_base(p["base"]), 20)],
        "search_rank": by_rank,
        "show": lambda p: one(store.get_model_version(ml(p["name"]), str(p["version"]))),
        "alias": lambda p: one(store.get_model_version_by_alias(ml(p["name"]), p["alias"])),
    }


# -- measurement ---------------------------------------------------------------------------------
@dataclass
class OpResult:
    system: str
    backend: str
    op: str
    n: int
    ms: list[float]
    sql_ms: list[float] = field(default_factory=list)
    queries: float = 0.0
    load_before: float = 0.0
    load_after: float = 0.0
    agree: str = ""
    explain: dict[str, Any] | None = None
    cpu_ms: list[float] = field(default_factory=list)

    def pct(self, xs: list[float], q: float) -> float:
        if not xs:
            return float("nan")
        xs = sorted(xs)
        return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]

    def summary(self) -> dict[str, Any]:
        return {"system": self.system, "backend": self.backend, "op": self.op, "title": OP_TITLES[self.op],
                "n": self.n, "p50_ms": self.pct(self.ms, .5), "p95_ms": self.pct(self.ms, .95),
                "p99_ms": self.pct(self.ms, .99), "mean_ms": statistics.fmean(self.ms),
                "cpu_p50_ms": self.pct(self.cpu_ms, .5), "cpu_p95_ms": self.pct(self.cpu_ms, .95),
                "sql_p50_ms": self.pct(self.sql_ms, .5), "sql_p95_ms": self.pct(self.sql_ms, .95),
                "queries_per_call": self.queries, "loadavg_before": self.load_before,
                "loadavg_after": self.load_after, "agree": self.agree}


def time_op(fn, params: list[dict], *, warmup: int, budget_s: float, min_n: int,
            keep: int = 10) -> tuple[list[float], list[float], list]:
    """Wall and CPU time of each call (ms), and the answers of the first `keep` calls (to compare systems).

    CPU time is this process's (Python, and SQLite's engine, which runs in-process): it stays put
    when other processes compete for the cores, which wall time on this shared machine does not.
    """
    for p in params[:warmup]:
        fn(p)
    gc.collect()
    out: list[float] = []
    cpu: list[float] = []
    answers = []
    deadline = time.perf_counter() + budget_s
    for p in params:
        c0, t0 = time.process_time_ns(), time.perf_counter_ns()
        got = fn(p)
        out.append((time.perf_counter_ns() - t0) / 1e6)
        cpu.append((time.process_time_ns() - c0) / 1e6)
        if len(answers) < keep:
            answers.append(got)
        if len(out) >= min_n and time.perf_counter() > deadline:
            break
    return out, cpu, answers


class Capture:
    """Collects the statements an engine runs (DBAPI level), to replay them without the ORM."""

    def __init__(self, engine):
        from sqlalchemy import event

        self.engine, self.calls, self._event = engine, [], event
        event.listen(engine, "before_cursor_execute", self._on)

    def _on(self, conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            self.calls.append((statement, parameters))

    def close(self):
        self._event.remove(self.engine, "before_cursor_execute", self._on)


def sql_only(engine, fn, params: list[dict], n: int, explain_param: dict | None) -> tuple[list[float], float, Any]:
    """Replay each call's SELECTs on a raw connection: the database's share of the call."""
    per_call: list[list] = []
    cap = Capture(engine)
    try:
        for p in params[:n]:
            cap.calls = []
            fn(p)
            per_call.append(list(cap.calls))
        cap.calls = []
        if explain_param is not None:
            fn(explain_param)
        explain_calls = list(cap.calls)
    finally:
        cap.close()
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()

        def run(stmts):
            t0 = time.perf_counter_ns()
            for st, pa in stmts:
                cur.execute(st, pa)
                cur.fetchall()
            return (time.perf_counter_ns() - t0) / 1e6

        for stmts in per_call[:5]:
            run(stmts)
        times = [run(stmts) for stmts in per_call]
        plan = explain(cur, engine.dialect.name, explain_calls, run) if explain_calls else None
        if engine.dialect.name == "postgresql":
            raw.rollback()
    finally:
        raw.close()
    queries = statistics.fmean(len(c) for c in per_call) if per_call else 0.0
    return times, queries, plan


def explain(cur, dialect: str, stmts, run) -> dict[str, Any]:
    """The plan of the slowest statement of one call (by replay time)."""
    timed = sorted(((min(run([s]) for _ in range(3)), s) for s in stmts), key=lambda x: -x[0])
    ms, (st, pa) = timed[0]
    if dialect == "sqlite":
        cur.execute("EXPLAIN QUERY PLAN " + st, pa)
        plan = "\n".join(f"{r[1]}->{r[0]} {r[3]}" for r in cur.fetchall())
    else:
        cur.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + st, pa)
        plan = "\n".join(r[0] for r in cur.fetchall())
    return {"statement": st, "parameters": _jsonable(pa), "ms": ms, "plan": plan,
            "statements_per_call": len(stmts)}


def _jsonable(x):
    try:
        json.dumps(x)
        return x
    except TypeError:
        return repr(x)


def run_system(system: str, backend: str, ops, engine, params, args, ds) -> tuple[list[OpResult], dict]:
    out, answers = [], {}
    slow = system == "mlflow"
    for op in OPS:
        fn = ops[op]
        la = os.getloadavg()[0]
        ms, cpu, answers[op] = time_op(fn, params[op], warmup=3 if slow else 20,
                                  budget_s=args.mlflow_budget_s if slow else 120,
                                  min_n=min(args.iterations, args.mlflow_min) if slow else args.iterations)
        # the SQL-only replay re-runs calls: cap it at ~1/4 of the op's budget for slow MLflow calls
        n_sql = min(len(ms), args.sql_calls)
        if slow:
            n_sql = max(3, min(n_sql // 5, int(args.mlflow_budget_s * 250 / max(statistics.median(ms), 1))))
        top = {"search_metric": {**params[op][0], "base": ds.base_names[0]},
               "search_newest": {"base": ds.base_names[0]},
               "search_rank": {**params[op][0], "base": ds.base_names[0]}}.get(op, params[op][0])
        sql_ms, queries, plan = sql_only(engine, fn, params[op], n_sql, top)
        r = OpResult(system, backend, op, len(ms), ms, sql_ms, queries, la, os.getloadavg()[0], explain=plan,
                     cpu_ms=cpu)
        out.append(r)
        s = r.summary()
        print(f"  {system:8} {backend:8} {op:14} n={r.n:4}  p50 {s['p50_ms']:8.2f}  p95 {s['p95_ms']:8.2f} ms"
              f"  cpu p50 {s['cpu_p50_ms']:7.2f}  sql p50/p95 {s['sql_p50_ms']:7.2f}/{s['sql_p95_ms']:7.2f} ms"
              f"  {queries:.1f} q/call  load {la:.1f}", flush=True)
    return out, answers


def agreement(a: dict, b: dict) -> dict[str, str]:
    """How many of the first calls gave the same ordered answer in both systems."""
    return {op: f"{sum(x == y for x, y in zip(a[op], b[op]))}/{min(len(a[op]), len(b[op]))}" for op in a}


# -- setup ---------------------------------------------------------------------------------------
def pg_database(server: str, name: str, *, reuse: bool) -> str:
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        exists = c.exec_driver_sql("SELECT 1 FROM pg_database WHERE datname = %(n)s", {"n": name}).first()
        if exists and not reuse:
            c.exec_driver_sql(f'DROP DATABASE "{name}" WITH (FORCE)')
        if not exists or not reuse:
            c.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE template0')
    admin.dispose()
    return make_url(server).set(database=name).render_as_string(hide_password=False)


def drop_pg(server: str, name: str) -> None:
    from sqlalchemy import create_engine

    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


def count(url: str, table: str) -> int:
    from sqlalchemy import create_engine, inspect

    eng = create_engine(url)
    try:
        if table not in inspect(eng).get_table_names():
            return -1
        with eng.connect() as c:
            return c.exec_driver_sql(f'SELECT count(*) FROM "{table}"').scalar()
    finally:
        eng.dispose()


def setup_catalog(url: str, ds: D.Dataset, tmp: Path, reuse: bool):
    from registry import migrate
    from registry.app import Registry
    from registry.db import make_engine
    from registry.settings import Settings

    t0 = time.perf_counter()
    loaded = False
    if not (reuse and count(url, "adapter_versions") == ds.n_versions):
        eng = make_engine(url)
        migrate.upgrade(eng)
        eng.dispose()
        D.load(url, D.catalog_tables(ds))
        loaded = True
    reg = Registry(Settings.from_env(env={}, db=url, store=str(tmp / "store"), home=tmp / "home", actor="bench"))
    return reg, (time.perf_counter() - t0 if loaded else None)


def setup_mlflow(url: str, ds: D.Dataset, reuse: bool):
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore

    t0 = time.perf_counter()
    have = count(url, "model_versions") if reuse else -1
    store = SqlAlchemyStore(url)  # creates MLflow's schema through its own migrations
    loaded = False
    if have != ds.n_versions:
        if have > 0:
            raise SystemExit(f"{url} holds other MLflow data; run without --reuse")
        D.load(url, D.mlflow_tables(ds))
        loaded = True
    return store, (time.perf_counter() - t0 if loaded else None)


def machine() -> dict[str, Any]:
    import sqlite3

    import mlflow
    import sqlalchemy

    info = {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
            "sqlite": sqlite3.sqlite_version, "sqlalchemy": sqlalchemy.__version__, "mlflow": mlflow.__version__,
            "loadavg_start": os.getloadavg()}
    try:
        import psutil

        info["memory_gb"] = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        pass
    try:
        info["cpu_model"] = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                                 if line.startswith("model name"))
    except (OSError, StopIteration):
        info["cpu_model"] = platform.processor()
    return info


# -- main ----------------------------------------------------------------------------------------
def print_table(rows: list[dict[str, Any]]) -> None:
    print(f"\n{'backend':9}{'system':10}{'operation':40}{'n':>5}{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}"
          f"{'CPU p50':>10}{'SQL p50':>10}{'SQL p95':>10}{'q/call':>8}  same answers")
    for r in rows:
        print(f"{r['backend']:9}{r['system']:10}{r['title']:40}{r['n']:5}{r['p50_ms']:10.2f}{r['p95_ms']:10.2f}"
              f"{r['p99_ms']:10.2f}{r['cpu_p50_ms']:10.2f}{r['sql_p50_ms']:10.2f}{r['sql_p95_ms']:10.2f}"
              f"{r['queries_per_call']:8.1f}  {r['agree']}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--versions", type=int, default=100_000, help="adapter versions (default 100,000)")
    ap.add_argument("--evals", type=int, default=500_000, help="eval results (default 500,000)")
    ap.add_argument("--backends", default="sqlite,postgres", help="comma list of sqlite, postgres")
    ap.add_argument("--mlflow", action=argparse.BooleanOptionalAction, default=True,
                    help="also measure MLflow's model registry on the same data (default on)")
    ap.add_argument("--iterations", type=int, default=500, help="timed calls per registry operation")
    ap.add_argument("--mlflow-budget-s", type=float, default=30.0,
                    help="seconds per MLflow operation (at least 20 calls, at most --iterations)")
    ap.add_argument("--mlflow-min", type=int, default=10, help="timed calls per MLflow operation, at least")
    ap.add_argument("--sql-calls", type=int, default=100,
                    help="calls whose statements are replayed raw for the SQL-only figure (MLflow: a fifth)")
    ap.add_argument("--quick", action="store_true", help="~2,000 versions, 100 iterations: a smoke run")
    ap.add_argument("--pg-url", default=PG_DEFAULT, help="PostgreSQL server (databases are created on it)")
    ap.add_argument("--data-dir", type=Path, default=None, help="where the SQLite files go (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the databases afterwards")
    ap.add_argument("--reuse", action="store_true", help="skip loading when the databases already hold the data")
    ap.add_argument("--explain", action="store_true", help="print the plan of each search's slowest statement")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)
    if args.quick:
        args.versions, args.evals, args.iterations = 2_000, 10_000, min(args.iterations, 50)
        args.mlflow_budget_s, args.mlflow_min, args.sql_calls = min(args.mlflow_budget_s, 1.0), 5, 25
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if set(backends) - {"sqlite", "postgres"}:
        ap.error("--backends takes sqlite and/or postgres")

    info = machine()
    print(f"generating {args.versions:,} versions / {args.evals:,} evals ...", flush=True)
    t0 = time.perf_counter()
    ds = D.generate(args.versions, args.evals, seed=args.seed)
    info["generate_s"] = round(time.perf_counter() - t0, 1)
    params = make_params(ds, args.iterations + 20, args.seed + 1)
    tmp = Path(tempfile.mkdtemp(prefix="lookup-bench-"))
    data_dir = args.data_dir or (RESULTS / "lookup-data" if (args.keep or args.reuse) else tmp)
    data_dir.mkdir(parents=True, exist_ok=True)
    tag = f"{args.versions}"
    results: list[OpResult] = []
    loads: dict[str, Any] = {}
    try:
        for backend in backends:
            if backend == "sqlite":
                cat_url = f"sqlite:///{data_dir / f'catalog-{tag}.db'}"
                ml_url = f"sqlite:///{data_dir / f'mlflow-{tag}.db'}"
                if not args.reuse:
                    for f in data_dir.glob(f"*-{tag}.db*"):
                        f.unlink()
            else:
                cat_url = pg_database(args.pg_url, f"ar_lookup_{tag}", reuse=args.reuse)
                ml_url = pg_database(args.pg_url, f"mlflow_lookup_{tag}", reuse=args.reuse) if args.mlflow else None
            print(f"[{backend}] loading the catalog ...", flush=True)
            reg, secs = setup_catalog(cat_url, ds, tmp, args.reuse)
            loads[f"{backend}/registry"] = secs
            print(f"[{backend}] catalog ready ({'reused' if secs is None else f'{secs:.0f} s'})", flush=True)
            rops = registry_ops(reg)
            res, reg_answers = run_system("registry", backend, rops, reg.db.engine, params, args, ds)
            if args.mlflow:
                print(f"[{backend}] loading MLflow ...", flush=True)
                store, secs = setup_mlflow(ml_url, ds, args.reuse)
                loads[f"{backend}/mlflow"] = secs
                print(f"[{backend}] MLflow ready ({'reused' if secs is None else f'{secs:.0f} s'})", flush=True)
                mres, ml_answers = run_system("mlflow", backend, mlflow_ops(store), store.engine, params, args, ds)
                agree = agreement(reg_answers, ml_answers)
                for r in res + mres:
                    r.agree = agree[r.op]
                res += mres
                store.engine.dispose()
            reg.close()
            results += res
    finally:
        if not args.keep:
            if "postgres" in backends:
                for db in (f"ar_lookup_{tag}", f"mlflow_lookup_{tag}"):
                    try:
                        drop_pg(args.pg_url, db)
                    except Exception as e:  # noqa: BLE001 - cleanup must not hide the real error
                        print(f"could not drop {db}: {e}", file=sys.stderr)
            if data_dir != tmp:
                for f in data_dir.glob(f"*-{tag}.db*"):
                    f.unlink()
        shutil.rmtree(tmp, ignore_errors=True)

    rows = [r.summary() for r in results]
    print_table(rows)
    if args.explain:
        for r in results:
            if r.explain and r.op.startswith("search"):
                print(f"\n--- {r.system} {r.backend} {r.op}: slowest statement {r.explain['ms']:.2f} ms "
                      f"({r.explain['statements_per_call']} statements per call)\n{r.explain['statement']}\n"
                      f"{r.explain['parameters']}\n{r.explain['plan']}")
    info["loadavg_end"] = os.getloadavg()
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"lookup-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({
        "command": " ".join([Path(sys.executable).name, *sys.argv]), "args": {k: str(v) for k, v in vars(args).items()},
        "machine": info, "dataset": {**D.row_counts(D.catalog_tables(ds)), "load_s": loads},
        "results": rows, "raw_ms": {f"{r.system}/{r.backend}/{r.op}": [round(x, 4) for x in r.ms] for r in results},
        "explain": {f"{r.system}/{r.backend}/{r.op}": r.explain for r in results if r.explain},
    }, indent=1, default=str))
    print(f"\nwrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
