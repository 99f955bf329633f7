"""Adapters verified per minute by one worker: base-model cache vs reloading the base for each adapter.

    .venv/bin/python bench/verify.py --adapters 20 --size small [--device cuda]

Builds one base model (tiny: 64 hidden, 2 layers; small: 512 hidden, 8 layers, ~30M parameters;
or --base PATH for a real one) and N LoRA adapters of it, registers them in a scratch catalog
(SQLite), enqueues one verify job per adapter and lets one in-process Worker drain the queue,
once with its ModelCache (the base loads once; adapters are hot-swapped) and once with the cache
off (the base loads for every job). Everything goes through the real job path: claim, static
check, resolve, load, probe, the guarded finish with its Verification row.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SIZES = {
    "tiny": dict(hidden_size=64, intermediate_size=128, num_layers=2, num_heads=4, vocab_size=256),
    "small": dict(hidden_size=512, intermediate_size=1408, num_layers=8, num_heads=8, vocab_size=8192),
}


def build(work: Path, size: str, n: int, base: Path | None) -> tuple[Path, list[Path]]:
    from registry.testing.tiny import build_adapter, build_llama

    if base is None:
        base = build_llama(work / f"base-{size}", **SIZES[size])
    adapters = [build_adapter(base, work / f"adapter-{i}", r=4 + 4 * (i % 3), seed=100 + i,
                              target_modules=["q_proj", "v_proj"] if i % 2 else None) for i in range(n)]
    return base, adapters


def run(base: Path, adapters: list[Path], *, cached: bool, device: str, dtype: str | None, work: Path) -> dict:
    from registry.app import Registry
    from registry.jobs.worker import Worker
    from registry.settings import Settings

    home = work / ("cached" if cached else "reload")
    reg = Registry(Settings.from_env(env={}, home=home, actor="bench"))
    reg.add_base(base, name="base")
    refs = [reg.push(a, name=f"bench-{i}", base="base").ref for i, a in enumerate(adapters)]
    for r in refs:  # materialise the adapters first: the bench measures verification, not the blob cache
        reg.resolve(r)
    jobs = [reg.jobs.verify(r, dtype=dtype) for r in refs]
    w = Worker(reg.core, device=device, kinds=["verify"], cache_enabled=cached)
    t0 = time.perf_counter()
    w.run(once=True)
    seconds = time.perf_counter() - t0
    done = [reg.jobs.get(j.id) for j in jobs]
    assert all(j.state == "succeeded" for j in done), [j.error for j in done if j.state != "succeeded"]
    passed = sum(bool(j.result["passed"]) for j in done)
    stats = w.models.stats()
    reg.close()
    return {"seconds": seconds, "per_min": len(jobs) / seconds * 60, "passed": passed, "loads": stats.misses}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--adapters", type=int, default=20)
    ap.add_argument("--size", choices=sorted(SIZES), default="small")
    ap.add_argument("--base", type=Path, default=None, help="a local base model folder instead of a built one")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default=None, help="bf16, fp16 or fp32 (default: the base's)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads (default on cpu: 1; on a busy 2-core box more threads spin and crawl)")
    args = ap.parse_args()
    import torch

    if args.threads or args.device == "cpu":
        torch.set_num_threads(args.threads or 1)
    with tempfile.TemporaryDirectory() as t:
        work = Path(t)
        t0 = time.perf_counter()
        base, adapters = build(work, args.size, args.adapters, args.base)
        print(f"built base ({args.base or args.size}) and {len(adapters)} adapters in {time.perf_counter() - t0:.1f}s",
              flush=True)
        rows = {}
        for cached in (True, False):
            rows[cached] = r = run(base, adapters, cached=cached, device=args.device, dtype=args.dtype, work=work)
            print(f"{'cache ' if cached else 'reload'}: {r['per_min']:7.1f} adapters/min "
                  f"({args.adapters} in {r['seconds']:.1f}s, base loaded {r['loads']}x, {r['passed']} passed)",
                  flush=True)
    dev = args.device if args.device == "cpu" else f"{args.device} ({torch.cuda.get_device_name(args.device)})"
    print("\n| device | base | adapters | with cache (adapters/min) | reload each (adapters/min) | speed-up |")
    print("|---|---|---|---|---|---|")
    print(f"| {dev} | {args.base or args.size} | {args.adapters} | {rows[True]['per_min']:.1f} | "
          f"{rows[False]['per_min']:.1f} | {rows[True]['per_min'] / rows[False]['per_min']:.1f}x |")


if __name__ == "__main__":
    main()
