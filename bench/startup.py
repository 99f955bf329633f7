"""Benchmark: how long the `adapter-registry` command takes to start and answer.

    .venv/bin/python bench/startup.py                          # 5 runs per command, the checkout's code
    .venv/bin/python bench/startup.py --runs 11 --json
    git worktree add /tmp/startup-before <commit>
    .venv/bin/python bench/startup.py --root /tmp/startup-before --root .   # two trees, same run
    .venv/bin/python bench/startup.py --module                 # `python -m registry` instead of the script

A tiny random Llama base (registry.testing.tiny.build_llama) and one LoRA adapter (build_adapter)
are built in a temporary folder; each tree under test (--root, repeatable; default: this
checkout) gets its own catalog there, filled with its own CLI (`base add`, `push`) in the default
embedded SQLite file under ADAPTER_REGISTRY_HOME. Then each command runs as a fresh subprocess:
`.venv/bin/adapter-registry ARGS` (the console script next to this Python), or
`python -m registry ARGS` with --module, with PYTHONPATH set to the tree so that its `registry`
and `cli` are the ones imported, from a working directory outside any checkout. Every command runs
once untimed (the OS file cache, .pyc files, the `resolve` cache), then all of them, for every
tree, --runs times round-robin, so that each sees the same load; we report the minimum and the
median wall time. `python -c "import sqlalchemy"` (the floor every catalog command pays) and
`python -c pass` (the interpreter's own start) are timed in the same rounds. One extra run per
command under `python -X importtime` lists the heavy packages it imported. Results: a table on
stdout and bench/results/startup-<timestamp>.json (git-ignored).
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
RESULTS = ROOT / "bench" / "results"
HEAVY = ("sqlalchemy", "alembic", "rich", "httpx", "fastapi", "uvicorn", "numpy", "safetensors", "boto3", "torch",
         "transformers", "peft")
TARGETS = {"--help": 0.25, "ls --json": 0.45, "show REF --json": 0.45, "resolve REF": 0.45}
REF = "team-a/bot@1"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5, help="timed runs per command (default 5)")
    ap.add_argument("--root", type=Path, action="append",
                    help="tree whose registry/ and cli/ are timed; repeat to compare trees (default: this one)")
    ap.add_argument("--module", action="store_true", help="run `python -m registry` instead of the console script")
    ap.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    args = ap.parse_args(argv)

    roots = [r.resolve() for r in (args.root or [ROOT])]
    script = Path(sys.executable).parent / "adapter-registry"
    entry = [sys.executable, "-m", "registry"] if args.module or not script.exists() else [sys.executable, str(script)]
    with tempfile.TemporaryDirectory(prefix="startup-bench-") as tmp:
        tmp_p = Path(tmp)
        base, adapter = _build_models(tmp_p)
        cases: list[tuple[str, str, list[str], dict[str, str]]] = []  # (tree, label, argv, env)
        floor_env = _env(ROOT, tmp_p / "unused")
        cases += [("", "python -c pass", [sys.executable, "-c", "pass"], floor_env),
                  ("", "import sqlalchemy", [sys.executable, "-c", "import sqlalchemy"], floor_env)]
        for i, root in enumerate(roots):
            env = _env(root, tmp_p / f"home-{i}")
            _fill_catalog(entry, env, tmp_p, base, adapter)
            cases += [(str(root), label, [*entry, *cmd], env) for label, cmd in (
                ("--help", ["--help"]), ("ls --json", ["ls", "--json"]), ("show REF --json", ["show", REF, "--json"]),
                ("resolve REF", ["resolve", REF]))]
        results = _measure(cases, cwd=tmp_p, runs=args.runs)

    meta = {"roots": [str(r) for r in roots], "entry": " ".join([Path(entry[0]).name, *entry[1:]]),
            "runs": args.runs, "cpus": os.cpu_count(), "python": platform.python_version(),
            "load_1min": os.getloadavg()[0], "at": time.strftime("%Y-%m-%d %H:%M:%S")}
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"startup-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    if args.json:
        print(out.read_text())
    else:
        _print_table(meta, results)
        print(f"\nraw results: {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    return 0 if all(r["ok"] is not False for r in results) else 1


def _env(root: Path, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADAPTER_REGISTRY_") and k != "PYTHONPATH"}
    env.update(PYTHONPATH=str(root), ADAPTER_REGISTRY_HOME=str(home))
    return env


def _build_models(tmp: Path) -> tuple[Path, Path]:
    import warnings

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    warnings.filterwarnings("ignore", category=FutureWarning)
    sys.path.insert(0, str(ROOT))
    from registry.testing.tiny import build_adapter, build_llama

    base = build_llama(tmp / "base")
    return base, build_adapter(base, tmp / "adapter")


def _fill_catalog(entry: list[str], env: dict[str, str], cwd: Path, base: Path, adapter: Path) -> None:
    for args in (["base", "add", str(base), "--name", "tiny-llama"],
                 ["push", str(adapter), "--name", REF.split("@")[0], "--base", "tiny-llama", "--tag", "task=chat"]):
        p = subprocess.run([*entry, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
        if p.returncode != 0:
            raise SystemExit(f"{' '.join(args[:2])} failed ({p.returncode}): {p.stderr.strip()}")


def _measure(cases: list[tuple[str, str, list[str], dict[str, str]]], *, cwd: Path, runs: int) -> list[dict]:
    """Time every case `runs` times, round-robin, so that all of them see the same load."""
    def once(label: str, argv: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess]:
        t0 = time.perf_counter()
        p = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=120)
        dt = time.perf_counter() - t0
        if p.returncode != 0:
            raise SystemExit(f"{label} failed ({p.returncode}): {p.stderr.strip()}")
        return dt, p

    for _tree, label, argv, env in cases:
        once(label, argv, env)
    times: list[list[float]] = [[] for _ in cases]
    for _ in range(runs):
        for i, (_tree, label, argv, env) in enumerate(cases):
            times[i].append(once(label, argv, env)[0])
    out = []
    for (tree, label, argv, env), t in zip(cases, times):
        _, p = once(label, [argv[0], "-X", "importtime", *argv[1:]], env)
        imported = {line.split("|")[-1].strip() for line in p.stderr.splitlines() if line.startswith("import time:")}
        target = TARGETS.get(label)
        out.append({"tree": tree, "command": label, "min_s": round(min(t), 4),
                    "median_s": round(statistics.median(t), 4),
                    "times_s": [round(x, 4) for x in t], "target_s": target,
                    "ok": None if target is None else min(t) <= target,
                    "heavy_imports": [m for m in HEAVY if m in imported]})
    return out


def _print_table(meta: dict, results: list[dict]) -> None:
    print(f"{meta['entry']}; {meta['runs']} runs each, round-robin; {meta['cpus']} CPUs; Python {meta['python']}; "
          f"load {meta['load_1min']:.2f} at the end")
    tree = None
    for r in results:
        if r["tree"] != tree:
            tree = r["tree"]
            print(f"\n{tree or 'floor'}")
            print(f"  {'command':<20} {'min s':>7} {'median s':>9} {'target':>7}  {'':4} heavy imports")
        tgt = f"{r['target_s']:.2f}" if r["target_s"] else ""
        ok = "" if r["ok"] is None else ("ok" if r["ok"] else "SLOW")
        print(f"  {r['command']:<20} {r['min_s']:>7.3f} {r['median_s']:>9.3f} {tgt:>7}  {ok:<4} "
              f"{', '.join(r['heavy_imports']) or '-'}")


if __name__ == "__main__":
    sys.exit(main())
