"""Benchmark: how long the `adapter-registry` command takes to start and answer.

    .venv/bin/python bench/startup.py                          # 5 runs per command, the checkout's code
    .venv/bin/python bench/startup.py --runs 11 --json
    .venv/bin/python bench/startup.py --root /tmp/startup-before   # another tree (a `git worktree` of HEAD)
    .venv/bin/python bench/startup.py --module                 # `python -m registry` instead of the script

A small catalog is built in a temporary folder first: a tiny random Llama base
(registry.testing.tiny.build_llama) and one LoRA adapter (build_adapter), registered with the real
CLI (`base add`, `push`) into the default embedded SQLite catalog under ADAPTER_REGISTRY_HOME.
Then each command runs as a fresh subprocess: `.venv/bin/adapter-registry ARGS` (the console
script next to this Python), or `python -m registry ARGS` with --module, with PYTHONPATH set to
--root so that tree's `registry` and `cli` are the ones imported, from a working directory outside
any checkout. Each command runs once untimed (warms the OS file cache and the `resolve` cache),
then --runs times; we report the minimum and the median wall time. In the same run
`python -c "import sqlalchemy"` is timed as the floor every catalog command pays, and
`python -c pass` as the interpreter's own start. One extra run per command under
`python -X importtime` lists which heavy packages it imported.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("sqlalchemy", "alembic", "rich", "httpx", "fastapi", "uvicorn", "numpy", "safetensors", "boto3", "torch",
         "transformers", "peft")
TARGETS = {"--help": 0.25, "ls --json": 0.45, "show REF --json": 0.45, "resolve REF": 0.45}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5, help="timed runs per command (default 5)")
    ap.add_argument("--root", type=Path, default=ROOT,
                    help="tree whose registry/ and cli/ are timed (default: this one)")
    ap.add_argument("--module", action="store_true", help="run `python -m registry` instead of the console script")
    ap.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    args = ap.parse_args(argv)

    root = args.root.resolve()
    script = Path(sys.executable).parent / "adapter-registry"
    entry = [sys.executable, "-m", "registry"] if args.module or not script.exists() else [sys.executable, str(script)]
    with tempfile.TemporaryDirectory(prefix="startup-bench-") as tmp:
        tmp_p = Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith("ADAPTER_REGISTRY_") and k != "PYTHONPATH"}
        env.update(PYTHONPATH=str(root), ADAPTER_REGISTRY_HOME=str(tmp_p / "home"))
        ref = _build_catalog(tmp_p, entry, env)
        cases = [
            ("python -c pass", [sys.executable, "-c", "pass"]),
            ("import sqlalchemy", [sys.executable, "-c", "import sqlalchemy"]),
            ("--help", [*entry, "--help"]),
            ("ls --json", [*entry, "ls", "--json"]),
            ("show REF --json", [*entry, "show", ref, "--json"]),
            ("resolve REF", [*entry, "resolve", ref]),
        ]
        results = [_measure(label, cmd, env, cwd=tmp_p, runs=args.runs) for label, cmd in cases]

    meta = {"root": str(root), "entry": " ".join(Path(e).name if i == 0 else e for i, e in enumerate(entry)),
            "runs": args.runs, "cpus": os.cpu_count(), "python": platform.python_version(),
            "load": os.getloadavg()[0], "at": time.strftime("%Y-%m-%d %H:%M:%S")}
    if args.json:
        print(json.dumps({"meta": meta, "results": results}, indent=2))
    else:
        _print_table(meta, results)
    return 0 if all(r["ok"] is not False for r in results) else 1


def _build_catalog(tmp: Path, entry: list[str], env: dict[str, str]) -> str:
    sys.path.insert(0, str(ROOT))
    from registry.testing.tiny import build_adapter, build_llama

    base = build_llama(tmp / "base")
    adapter = build_adapter(base, tmp / "adapter")
    for args in (["base", "add", str(base), "--name", "tiny-llama"],
                 ["push", str(adapter), "--name", "team-a/bot", "--base", "tiny-llama", "--tag", "task=chat"]):
        p = subprocess.run([*entry, *args], env=env, cwd=tmp, capture_output=True, text=True, timeout=300)
        if p.returncode != 0:
            raise SystemExit(f"{' '.join(args[:2])} failed ({p.returncode}): {p.stderr.strip()}")
    return "team-a/bot@1"


def _measure(label: str, cmd: list[str], env: dict[str, str], *, cwd: Path, runs: int) -> dict:
    def once(c: list[str]) -> tuple[float, subprocess.CompletedProcess]:
        t0 = time.perf_counter()
        p = subprocess.run(c, env=env, cwd=cwd, capture_output=True, text=True, timeout=120)
        dt = time.perf_counter() - t0
        if p.returncode != 0:
            raise SystemExit(f"{label} failed ({p.returncode}): {p.stderr.strip()}")
        return dt, p

    once(cmd)  # untimed: OS file cache, .pyc files, the resolve cache
    times = [once(cmd)[0] for _ in range(runs)]
    _, p = once([cmd[0], "-X", "importtime", *cmd[1:]])
    imported = {line.split("|")[-1].strip() for line in p.stderr.splitlines() if line.startswith("import time:")}
    heavy = [m for m in HEAVY if m in imported]
    target = TARGETS.get(label)
    return {"command": label, "min_s": round(min(times), 4), "median_s": round(statistics.median(times), 4),
            "times_s": [round(t, 4) for t in times], "target_s": target,
            "ok": None if target is None else min(times) <= target, "heavy_imports": heavy}


def _print_table(meta: dict, results: list[dict]) -> None:
    print(f"{meta['entry']} from {meta['root']}; {meta['runs']} runs each; {meta['cpus']} CPUs; "
          f"Python {meta['python']}; load {meta['load']:.2f}")
    print(f"{'command':<20} {'min s':>7} {'median s':>9} {'target':>7}  {'':4} heavy imports")
    for r in results:
        tgt = f"{r['target_s']:.2f}" if r["target_s"] else ""
        ok = "" if r["ok"] is None else ("ok" if r["ok"] else "SLOW")
        print(f"{r['command']:<20} {r['min_s']:>7.3f} {r['median_s']:>9.3f} {tgt:>7}  {ok:<4} "
              f"{', '.join(r['heavy_imports']) or '-'}")


if __name__ == "__main__":
    sys.exit(main())
