"""Benchmark: the server stays responsive under hostile requests, and the HTTP limits cost little.

    .venv/bin/python bench/security.py                      # 15 s of hostile load, 4 x 5 s of search per mode
    .venv/bin/python bench/security.py --hostile-s 30 --search-s 10

Two real `adapter-registry serve` processes over one catalog (a tiny Llama base, a few adapters,
built locally): one with the limits on (the default), one with ADAPTER_REGISTRY_LIMITS=false.

1. **/api/v1/healthz under attack** (limits on): 4 threads send hostile requests back to back
   for --hostile-s seconds: two push an adapter whose rank_pattern key backtracks
   catastrophically in Python's `re` (`(\\w|\\.)*` x 8 + `!`: ~4 s per module name there), one
   pushes a trainer folder whose training_args.bin is a 300 KB zip inflating to 300 MiB, one
   sends an anonymous 12 MB JSON body. Meanwhile /api/v1/healthz is asked every 50 ms:
   p50 / p95 / max latency (goal: p95 < 100 ms), and what the hostile requests were answered.
2. **search req/s at concurrency 4**, limits on vs off, alternating on/off/on/off... for
   --rounds rounds of --search-s seconds (asyncio httpx, keep-alive), so drift hits both alike.
   Goal: on is no more than 5% slower.

Results: a table on stdout and bench/results/security-<timestamp>.json (git-ignored).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]  # bench/queue.py shadows `queue`
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"
CRAFTED_KEY = r"(\w|\.)*" * 8 + "!"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare(work: Path) -> dict:
    """The catalog, tokens, and the hostile payloads' folders."""
    import warnings

    from transformers.utils import logging as hf_logging

    from registry.app import Registry
    from registry.settings import Settings
    from registry.testing.tiny import build_adapter, build_llama, write_trainer_output

    hf_logging.set_verbosity_error()
    warnings.filterwarnings("ignore")
    base = build_llama(work / "llama")
    adapter = build_adapter(base, work / "adapter", r=4, seed=1)
    settings = Settings.from_env(env={}, home=work / "home", actor="bench")
    with Registry(settings) as reg:
        reg.add_base(base, name="tiny-llama")
        for i in range(20):
            reg.push(build_adapter(base, work / f"a{i}", r=4, seed=10 + i), name=f"team-{i % 3}/bot-{i}",
                     base="tiny-llama", tags=[f"task=t{i % 4}"])
            reg.add_eval(f"team-{i % 3}/bot-{i}@1", {"acc": i / 20})
        token = reg.tokens.create("bench", scope="write").token
    crafted = work / "crafted"
    shutil.copytree(adapter, crafted)
    conf = json.loads((crafted / "adapter_config.json").read_text())
    conf["rank_pattern"] = {CRAFTED_KEY: 4}
    (crafted / "adapter_config.json").write_text(json.dumps(conf))
    bomb = write_trainer_output(adapter, work / "bomb", steps=(5,))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z, z.open("archive/data.pkl", "w") as f:
        for _ in range(300):
            f.write(b"\0" * (1 << 20))
    (bomb / "training_args.bin").write_bytes(buf.getvalue())
    return {"home": str(settings.home), "token": token, "crafted": crafted, "bomb": bomb,
            "bomb_bytes": len(buf.getvalue())}


def start_server(home: str, *, limits: bool) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADAPTER_REGISTRY_")}
    env.update(ADAPTER_REGISTRY_HOME=home, ADAPTER_REGISTRY_LIMITS="true" if limits else "false",
               PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "registry", "serve", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/api/v1/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"the server did not start: {proc.stderr.read() if proc.stderr else ''}")


def _files(folder: Path):
    return [("files", (p.relative_to(folder).as_posix(), p.read_bytes(), "application/octet-stream"))
            for p in sorted(folder.rglob("*")) if p.is_file()]


def hostile(url: str, ctx: dict, seconds: float) -> dict:
    """4 hostile clients for `seconds` while healthz is sampled every 50 ms; latencies and answers."""
    import httpx

    stop = threading.Event()
    answers: dict[str, dict[str, int]] = {}
    lock = threading.Lock()
    auth = {"Authorization": f"Bearer {ctx['token']}"}

    def note(kind: str, status) -> None:
        with lock:
            answers.setdefault(kind, {}).setdefault(str(status), 0)
            answers[kind][str(status)] += 1

    def push(kind: str, folder: Path) -> None:
        files, n = _files(folder), 0
        with httpx.Client(timeout=120) as c:
            while not stop.is_set():
                n += 1
                name = f"team-x/{kind}-{threading.get_ident()}-{n}"
                try:
                    r = c.post(f"{url}/api/v1/adapters/{name}/versions", files=files, data={"base": "tiny-llama"},
                               headers=auth)
                    note(kind, r.status_code)
                except httpx.HTTPError as e:
                    note(kind, type(e).__name__)

    def big_body() -> None:
        body = b'{"metrics": {"a": 1}, "pad": "' + b"x" * (12 * 1024 * 1024) + b'"}'
        with httpx.Client(timeout=60) as c:
            while not stop.is_set():
                try:
                    r = c.post(f"{url}/api/v1/adapters/team-0/bot-0/versions/1/evals", content=body,
                               headers={"Content-Type": "application/json"})
                    note("anonymous_12mb_body", r.status_code)
                except httpx.HTTPError as e:
                    note("anonymous_12mb_body", type(e).__name__)

    threads = [threading.Thread(target=push, args=("crafted_rank_pattern", ctx["crafted"])),
               threading.Thread(target=push, args=("crafted_rank_pattern", ctx["crafted"])),
               threading.Thread(target=push, args=("zip_bomb", ctx["bomb"])),
               threading.Thread(target=big_body)]
    for t in threads:
        t.start()
    lat = []
    with httpx.Client(timeout=30) as c:
        t_end = time.monotonic() + seconds
        while time.monotonic() < t_end:
            t0 = time.perf_counter()
            c.get(url + "/api/v1/healthz")
            lat.append((time.perf_counter() - t0) * 1000)
            time.sleep(max(0.0, 0.05 - (time.perf_counter() - t0)))
    stop.set()
    for t in threads:
        t.join(180)
    lat.sort()
    return {"samples": len(lat), "p50_ms": statistics.median(lat), "p95_ms": lat[int(0.95 * (len(lat) - 1))],
            "max_ms": lat[-1], "answers": answers}


async def _search_rps(url: str, seconds: float, concurrency: int = 4) -> tuple[float, int]:
    import httpx

    done = errors = 0
    async with httpx.AsyncClient(base_url=url, timeout=30,
                                 limits=httpx.Limits(max_keepalive_connections=concurrency)) as c:
        for _ in range(20):  # warm-up
            await c.get("/api/v1/adapters", params={"base": "tiny-llama", "limit": 20})
        t_end = time.monotonic() + seconds

        async def worker() -> None:
            nonlocal done, errors
            while time.monotonic() < t_end:
                r = await c.get("/api/v1/adapters", params={"base": "tiny-llama", "limit": 20})
                done += 1
                errors += r.status_code != 200

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done / (time.perf_counter() - t0), errors


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hostile-s", type=float, default=15)
    ap.add_argument("--search-s", type=float, default=5)
    ap.add_argument("--rounds", type=int, default=4)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-security-"))
    procs = []
    try:
        t = time.perf_counter()
        ctx = prepare(work)
        print(f"catalog ready in {time.perf_counter() - t:.1f} s; zip bomb {ctx['bomb_bytes']:,} bytes", flush=True)
        on, url_on = start_server(ctx["home"], limits=True)
        off, url_off = start_server(ctx["home"], limits=False)
        procs = [on, off]
        health = hostile(url_on, ctx, args.hostile_s)
        print(f"healthz under 4 hostile clients ({health['samples']} samples): p50 {health['p50_ms']:.1f} ms, "
              f"p95 {health['p95_ms']:.1f} ms, max {health['max_ms']:.1f} ms", flush=True)
        print(f"  hostile answers: {json.dumps(health['answers'], sort_keys=True)}", flush=True)
        rounds = {"on": [], "off": []}
        for i in range(args.rounds):
            for mode, url in (("on", url_on), ("off", url_off)) if i % 2 == 0 else (("off", url_off), ("on", url_on)):
                rps, errs = asyncio.run(_search_rps(url, args.search_s))
                rounds[mode].append(rps)
                print(f"  search, limits {mode:<3} round {i + 1}: {rps:7.1f} req/s ({errs} non-200)", flush=True)
        mean = {m: statistics.mean(v) for m, v in rounds.items()}
        cost = (mean["off"] - mean["on"]) / mean["off"] * 100
        print(f"search at concurrency 4: limits on {mean['on']:.1f} req/s, off {mean['off']:.1f} req/s "
              f"({cost:+.1f}% slower with the limits)", flush=True)
        RESULTS.mkdir(parents=True, exist_ok=True)
        out = RESULTS / f"security-{time.strftime('%Y%m%d-%H%M%S')}.json"
        out.write_text(json.dumps({"args": vars(args), "python": platform.python_version(), "cpus": os.cpu_count(),
                                   "healthz": health, "search_rps": rounds, "search_mean_rps": mean,
                                   "limits_cost_pct": cost}, indent=2, default=str))
        print(f"results: {out.relative_to(ROOT)}")
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
