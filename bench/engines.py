"""Engine verification and export times on this machine (docs/BENCHMARKS.md).

    .venv/bin/python bench/engines.py --engine vllm|llama.cpp --adapters 4

For N adapters of one tiny engine-ready Llama (registry/engines/tiny.py), registered in a scratch
catalog (SQLite):
- cold: `verify --engine E` of one adapter, end to end (static check, preflight, peft's reference,
  the engine's process started for it, converted first for llama.cpp);
- kept loaded: one engine process for all N adapters (registry/workflows/verify.py engine_runs, as
  a worker keeping the engine loaded across adapters of one base would), per adapter;
- llama.cpp only: export --format gguf, LoRA and merged (f32).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--engine", choices=["vllm", "llama.cpp"], required=True)
    ap.add_argument("--adapters", type=int, default=4)
    args = ap.parse_args()

    from registry.app import Registry
    from registry.engines import install
    from registry.engines.tiny import build_llama
    from registry.settings import Settings
    from registry.testing.tiny import build_adapter
    from registry.verify import engine as E
    from registry.workflows import verify as verify_wf
    from registry.workflows.export import export
    from registry.workflows.resolve import adapter_folder, base_folder

    env = install.require(args.engine, install.engines_dir())
    out: dict = {"engine": args.engine, "engine_version": env.version, "adapters": args.adapters}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        base = build_llama(work / "base")
        ads = [build_adapter(base, work / f"a{i}", r=8, seed=100 + i) for i in range(args.adapters)]
        reg = Registry(Settings.from_env(home=work / "home"))
        reg.add_base(base, name="llama")
        for i, a in enumerate(ads):
            reg.push(a, name=f"a{i}", base="llama")
        t = time.monotonic()
        v = verify_wf.verify(reg.core, "a0@1", base=None, dtype=None, device="cpu", engine=args.engine)
        out["cold_verify_s"] = round(time.monotonic() - t, 1)
        out["cold_passed"] = v.passed
        out["cold_engine_wall_s"] = round(v.figures.get("engine_wall_s") or 0, 1)
        with reg.core.db.read() as s:
            from registry.catalog import queries as Q
            from registry.refs import parse_ref

            rows = [Q.get_version(s, parse_ref(f"a{i}@1"))[1] for i in range(args.adapters)]
            digests = [r.content_digest for r in rows]
            fp = rows[0].base_model.fingerprint
        base_dir = base_folder(reg.core, f"llama@{fp}")
        prompts = E.probe_token_ids(base_dir)
        pairs = [(d, adapter_folder(reg.core, f"a{i}@1")) for i, d in enumerate(digests)]
        t = time.monotonic()
        answer = verify_wf.engine_runs(reg.core, args.engine, env, base_dir, fp, pairs, prompts, dtype="float32")
        total = time.monotonic() - t
        out["kept_loaded_total_s"] = round(total, 1)
        out["kept_loaded_engine_load_s"] = round(answer.get("load_s") or 0, 1)
        out["kept_loaded_per_adapter_generate_s"] = round(
            sum(r["seconds"] for r in answer["adapters"].values()) / max(1, len(answer["adapters"])), 2)
        out["kept_loaded_per_adapter_s"] = round(total / args.adapters, 1)
        from registry.verify.cache import ModelCache

        cache = ModelCache()
        t = time.monotonic()
        for d, a in pairs:
            E.reference(cache, base_dir, a, base_key=fp, adapter_key=d, dtype="float32", prompts=prompts)
        out["peft_reference_per_adapter_s"] = round((time.monotonic() - t) / len(pairs), 2)
        if args.engine == "llama.cpp":
            for merged in (False, True):
                e = export(reg.core, "a1@1", fmt="gguf", out=work / "gguf", merged=merged, outtype="f32")
                out[f"export_{'merged' if merged else 'lora'}_s"] = round(e.seconds, 1)
        reg.close()
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
