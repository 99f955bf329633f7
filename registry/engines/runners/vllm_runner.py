"""Greedy tokens + logprobs from vLLM's offline LLM, without and with each LoRA (run in vLLM's venv).

Request: {"base": DIR, "adapters": [{"key": K, "path": DIR}], "prompts": [[token ids]], "max_tokens": N,
          "dtype": "float32", "max_lora_rank": R, "lora_target_modules": [suffixes] or null}
Answer:  {"engine_version": V, "base": RUN, "adapters": {K: RUN}, "load_s": S, "errors": {K: MESSAGE}}
         RUN = {"tokens": [[ids]], "logprobs": [[float]], "seconds": S}
One LLM serves every adapter of the base (the engine stays loaded across adapters).
`lora_target_modules` is the server's `--lora-target-modules` (a deployment-time filter: vLLM
loads an adapter's other modules and silently does not apply them), so a verification can be run
against the configuration the adapter will really be served with. An adapter vLLM
refuses is reported in "errors" with vLLM's own message.
"""

import json
import os
import sys
import time

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # in-process engine: no main guard, faster
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")


def _run(llm, prompts, params, lora=None):
    from vllm.inputs import TokensPrompt  # type: ignore[import-not-found]

    t = time.monotonic()
    outs = llm.generate([TokensPrompt(prompt_token_ids=p) for p in prompts], params, lora_request=lora,
                        use_tqdm=False)
    tokens, logprobs = [], []
    for o in outs:
        c = o.outputs[0]
        tokens.append(list(c.token_ids))
        logprobs.append([float(step[tid].logprob) for tid, step in zip(c.token_ids, c.logprobs)])
    return {"tokens": tokens, "logprobs": logprobs, "seconds": time.monotonic() - t}


def main(req_path, out_path):
    with open(req_path) as f:
        req = json.load(f)
    import vllm  # type: ignore[import-not-found]
    from vllm import LLM, SamplingParams
    from vllm.lora.request import LoRARequest  # type: ignore[import-not-found]

    t = time.monotonic()
    llm = LLM(model=req["base"], enable_lora=True, max_lora_rank=req.get("max_lora_rank", 16), max_loras=1,
              enforce_eager=True, dtype=req.get("dtype", "float32"), max_model_len=req.get("max_model_len", 128),
              seed=0, skip_tokenizer_init=True, lora_target_modules=req.get("lora_target_modules"))
    load_s = time.monotonic() - t
    params = SamplingParams(temperature=0.0, max_tokens=req["max_tokens"], logprobs=1, detokenize=False,
                            ignore_eos=True)
    answer = {"engine_version": vllm.__version__, "load_s": load_s, "adapters": {}, "errors": {}}
    answer["base"] = _run(llm, req["prompts"], params)
    for i, a in enumerate(req["adapters"], start=1):
        try:
            answer["adapters"][a["key"]] = _run(llm, req["prompts"], params, LoRARequest(a["key"], i, a["path"]))
        except Exception as e:  # vLLM's refusal, reported as the engine's verdict
            answer["errors"][a["key"]] = f"{type(e).__name__}: {e}"[:2000]
    with open(out_path, "w") as f:
        json.dump(answer, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
