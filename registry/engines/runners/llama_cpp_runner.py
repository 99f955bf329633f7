"""Greedy tokens + logprobs from llama-server, without and with each GGUF LoRA (any Python 3; stdlib only).

Request: {"server": PATH to llama-server, "base": GGUF, "adapters": [{"key": K, "path": GGUF}],
          "prompts": [[token ids]], "max_tokens": N, "threads": T}
Answer:  {"engine_version": V, "base": RUN, "adapters": {K: RUN}, "load_s": S, "errors": {K: MESSAGE}}
         RUN = {"tokens": [[ids]], "logprobs": [[float or null]], "seconds": S}
One server, on a free loopback port, holds the base and every adapter (`--lora-init-without-apply`);
each request picks its adapter with the per-request "lora" scales (all 0: the base).
"""

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url, body, timeout=120):
    data = json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def _wait(url, proc, log, timeout=300):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"llama-server exited ({proc.returncode}): {log()[-1500:]}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise TimeoutError(f"llama-server did not become healthy in {timeout} s")


def _run(url, prompts, max_tokens, scales):
    t = time.monotonic()
    tokens, logprobs = [], []
    for p in prompts:
        out = _post(url + "/completion", {
            "prompt": p, "n_predict": max_tokens, "temperature": 0.0, "top_k": 1, "n_probs": 1,
            "ignore_eos": True, "cache_prompt": False, "return_tokens": True, "samplers": ["top_k"],
            "lora": [{"id": i, "scale": s} for i, s in enumerate(scales)],
        })
        # "tokens" has every generated id; completion_probabilities leaves out the tokens whose text
        # is not complete UTF-8 yet (byte-fallback pieces), so logprobs are aligned by id, None where absent.
        ids = [int(t) for t in out.get("tokens") or []]
        probs = list(out.get("completion_probabilities") or [])
        lps: list = []
        j = 0
        for t in ids:
            if j < len(probs) and int(probs[j]["id"]) == t:
                lps.append(float(probs[j]["logprob"]))
                j += 1
            else:
                lps.append(None)
        tokens.append(ids)
        logprobs.append(lps)
    return {"tokens": tokens, "logprobs": logprobs, "seconds": time.monotonic() - t}


def main(req_path, out_path):
    with open(req_path) as f:
        req = json.load(f)
    version = subprocess.run([req["server"], "--version"], capture_output=True, text=True)
    port = _free_port()
    argv = [req["server"], "-m", req["base"], "--host", "127.0.0.1", "--port", str(port), "-c", "512",
            "-t", str(req.get("threads", 2)), "-np", "1", "--no-warmup", "--lora-init-without-apply"]
    for a in req["adapters"]:
        argv += ["--lora", a["path"]]
    logf = open(out_path + ".server.log", "w+")

    def log():
        logf.flush()
        with open(out_path + ".server.log") as f:
            return f.read()

    t = time.monotonic()
    proc = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait(url, proc, log)
        load_s = time.monotonic() - t
        n = len(req["adapters"])
        first = [ln for ln in (version.stdout + version.stderr).splitlines() if ln.startswith("version")]
        answer: dict = {"engine_version": (first or ["?"])[0], "load_s": load_s, "adapters": {}, "errors": {}}
        answer["base"] = _run(url, req["prompts"], req["max_tokens"], [0.0] * n)
        for i, a in enumerate(req["adapters"]):
            scales = [0.0] * n
            scales[i] = 1.0
            try:
                answer["adapters"][a["key"]] = _run(url, req["prompts"], req["max_tokens"], scales)
            except urllib.error.HTTPError as e:
                answer["errors"][a["key"]] = f"HTTP {e.code}: {e.read()[:500]!r}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        logf.close()
    with open(out_path, "w") as f:
        json.dump(answer, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
