"""A real `vllm serve` on loopback: deploy makes it serve exactly the alias set, with peft's tokens."""

from __future__ import annotations

import os
import socket
import subprocess
import time

import httpx
import pytest

from registry.workflows import deploy as deploy_wf
from registry.workflows import verify as verify_wf


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def vllm_server(vllm_env, engine_llama, tmp_path):
    port = _port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update(VLLM_ALLOW_RUNTIME_LORA_UPDATING="True", VLLM_CPU_KVCACHE_SPACE="1", VLLM_TARGET_DEVICE="cpu")
    log = open(tmp_path / "vllm-serve.log", "w")
    # `vllm serve` (the console script and vllm.entrypoints.cli.main) looks up package metadata named
    # vllm, which vllm-cpu does not have; the OpenAI server module starts the same server.
    proc = subprocess.Popen([vllm_env.python, "-m", "vllm.entrypoints.openai.api_server", "--model", str(engine_llama),
                             "--host", "127.0.0.1", "--port", str(port), "--enable-lora", "--max-lora-rank", "8",
                             "--max-loras", "2", "--enforce-eager", "--dtype", "float32", "--max-model-len", "128",
                             "--skip-tokenizer-init"], stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    end = time.monotonic() + 300
    try:
        while time.monotonic() < end:
            assert proc.poll() is None, (tmp_path / "vllm-serve.log").read_text()[-3000:]
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(1)
        else:
            pytest.fail("vllm serve did not start in 300 s")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _tokens(url, model, prompt):
    r = httpx.post(url + "/v1/completions", json={"model": model, "prompt": prompt, "max_tokens": 8,
                                                  "temperature": 0, "ignore_eos": True, "return_token_ids": True},
                   timeout=60)
    r.raise_for_status()
    return r.json()["choices"][0]["token_ids"]


def _peft_tokens(base, adapter, prompt):
    from registry.verify import engine as E
    from registry.verify.cache import ModelCache

    runs = E.reference(ModelCache(), base, adapter, base_key="b", adapter_key=str(adapter), dtype="float32",
                       prompts=[prompt])
    return runs["adapter"]["tokens"][0]


def test_deploy_serves_the_alias_set_and_follows_alias_moves(sqlite_registry, vllm_server, engines_root,
                                                            engine_llama, engine_adapter, models_dir):
    from registry.testing.tiny import build_adapter

    reg = sqlite_registry
    reg.add_base(engine_llama, name="llama")
    reg.push(engine_adapter, name="bot", base="llama")
    second = build_adapter(engine_llama, models_dir / "engine-adapter-v2", r=8, seed=13)
    reg.push(second, name="bot", base="llama")
    assert verify_wf.verify(reg.core, "bot@1", base=None, dtype=None, device="cpu", engine="vllm",
                            engines_dir=str(engines_root)).passed
    reg.release.set_alias("bot", "production", 1)

    p = deploy_wf.deploy(reg.core, vllm_server, alias="production", base="llama")
    assert list(p.load) == ["bot@production"] and p.unload == ()
    prompt = [259, 267, 264, 271, 271, 274]
    assert _tokens(vllm_server, "bot@production", prompt) == _peft_tokens(engine_llama, engine_adapter, prompt)
    assert deploy_wf.deploy(reg.core, vllm_server, alias="production", base="llama").keep == ("bot@production",)

    reg.release.set_alias("bot", "production", 2)  # moved to a version not verified on vLLM: taken off
    p = deploy_wf.deploy(reg.core, vllm_server, alias="production", base="llama")
    assert p.unload == ("bot@production",) and not p.load and "not verified on vllm" in p.skipped["bot@production"]
    models = httpx.get(vllm_server + "/v1/models").json()["data"]
    assert "bot@production" not in {m["id"] for m in models}

    p = deploy_wf.deploy(reg.core, vllm_server, alias="production", base="llama", require_verified=False)
    assert list(p.load) == ["bot@production"]
    assert _tokens(vllm_server, "bot@production", prompt) == _peft_tokens(engine_llama, second, prompt)
