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


def start_vllm(vllm_env, base, tmp_path, extra_env=None):
    """`vllm serve BASE` on a free loopback port; returns (url, process)."""
    port = _port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update(VLLM_ALLOW_RUNTIME_LORA_UPDATING="True", VLLM_CPU_KVCACHE_SPACE="1", VLLM_TARGET_DEVICE="cpu",
               **(extra_env or {}))
    log = tmp_path / f"vllm-serve-{port}.log"
    # `vllm serve` (the console script and vllm.entrypoints.cli.main) looks up package metadata named
    # vllm, which vllm-cpu does not have; the OpenAI server module starts the same server.
    proc = subprocess.Popen([vllm_env.python, "-m", "vllm.entrypoints.openai.api_server", "--model", str(base),
                             "--host", "127.0.0.1", "--port", str(port), "--enable-lora", "--max-lora-rank", "8",
                             "--max-loras", "2", "--enforce-eager", "--dtype", "float32", "--max-model-len", "128",
                             "--skip-tokenizer-init"], stdout=log.open("w"), stderr=subprocess.STDOUT, env=env,
                            cwd=tmp_path)
    url = f"http://127.0.0.1:{port}"
    end = time.monotonic() + 300
    while time.monotonic() < end:
        if proc.poll() is not None:
            pytest.fail(log.read_text()[-3000:])
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return url, proc
        except httpx.HTTPError:
            pass
        time.sleep(1)
    proc.kill()
    pytest.fail("vllm serve did not start in 300 s")


def stop(proc):
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture
def vllm_server(vllm_env, engine_llama, tmp_path):
    url, proc = start_vllm(vllm_env, engine_llama, tmp_path)
    yield url
    stop(proc)


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


def test_the_resolver_serves_name_at_alias_from_the_registry_only_when_verified_on_vllm(
        sqlite_registry, vllm_env, engines_root, engine_llama, engine_adapter, models_dir, tmp_path):
    """vLLM's `vllm.general_plugins` entry point (the [vllm] extra) registers the registry's LoRAResolver."""
    import sys
    from pathlib import Path

    from registry.testing.tiny import build_adapter

    reg = sqlite_registry
    reg.add_base(engine_llama, name="llama")
    reg.push(engine_adapter, name="team-a/bot", base="llama")
    reg.push(build_adapter(engine_llama, models_dir / "engine-unverified", r=8, seed=16), name="team-a/raw",
             base="llama")
    assert verify_wf.verify(reg.core, "team-a/bot@1", base=None, dtype=None, device="cpu", engine="vllm",
                            engines_dir=str(engines_root)).passed
    reg.release.set_alias("team-a/bot", "production", 1)
    reg.release.set_alias("team-a/raw", "production", 1)
    # what `pip install adapter-registry[vllm]` puts in vLLM's environment: the package and its entry point
    site = tmp_path / "site"
    dist = site / "adapter_registry_vllm-0.1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: adapter-registry-vllm\nVersion: 0.1.0\n")
    (dist / "entry_points.txt").write_text("[vllm.general_plugins]\n"
                                           "adapter-registry = registry.engines.vllm_resolver:register\n")
    root = Path(__file__).resolve().parents[2]
    st = reg.core.settings
    boot = f'import sys; sys.path.insert(0, "{root}"); from registry.__main__ import main; main()'
    cli = f"{sys.executable} -c '{boot}'"
    url, proc = start_vllm(vllm_env, engine_llama, tmp_path, {
        "PYTHONPATH": f"{site}:{root}", "ADAPTER_REGISTRY_CLI": cli, "ADAPTER_REGISTRY_HOME": str(st.home),
        "ADAPTER_REGISTRY_DB": st.db_url, "ADAPTER_REGISTRY_STORE": st.store_url})
    try:
        prompt = [259, 267, 264, 271, 271, 274]
        assert _tokens(url, "team-a/bot@production", prompt) == _peft_tokens(engine_llama, engine_adapter, prompt)
        r = httpx.post(url + "/v1/completions", json={"model": "team-a/raw@production", "prompt": prompt,
                                                      "max_tokens": 4}, timeout=60)
        assert r.status_code == 404, r.text  # registered, aliased, but never verified on vLLM: not served
    finally:
        stop(proc)


def _lines(proc):
    """The JSON lines a `deploy --follow --json` process prints, as a queue filled by a thread."""
    import json
    import queue
    import threading

    q: queue.Queue = queue.Queue()

    def pump():
        for line in proc.stdout:
            if line.strip():
                q.put(json.loads(line))

    threading.Thread(target=pump, daemon=True).start()
    return q


def _follower(reg, url, state):
    import sys

    from tests.factories import ROOT, cli_env

    proc = subprocess.Popen([sys.executable, "-m", "registry", "deploy", "--vllm", url, "--alias", "production",
                             "--base", "llama", "--allow-unverified", "--follow", "--state", str(state), "--poll",
                             "0.2", "--json"], cwd=ROOT, env=cli_env(reg.core.settings), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    return proc, _lines(proc)


def _served(url):
    return {m["id"]: m.get("root") for m in httpx.get(url + "/v1/models").json()["data"] if m.get("parent")}


def test_deploy_follow_serves_each_alias_move_and_resumes_from_its_state(sqlite_registry, vllm_server, engine_llama,
                                                                       engine_adapter, models_dir, tmp_path):
    """`deploy --follow`: after every alias move the server serves exactly the alias set, with peft's tokens."""
    from registry.testing.tiny import build_adapter
    from tests.factories import wait_for

    reg = sqlite_registry
    reg.add_base(engine_llama, name="llama")
    reg.push(engine_adapter, name="bot", base="llama")
    second = build_adapter(engine_llama, models_dir / "engine-follow-v2", r=8, seed=17)
    reg.push(second, name="bot", base="llama")
    reg.push(build_adapter(engine_llama, models_dir / "engine-follow-faq", r=8, seed=19), name="faq", base="llama")
    reg.release.set_alias("bot", "production", 1)
    prompt = [259, 267, 264, 271, 271, 274]
    state = tmp_path / "deploy.state"

    proc, out = _follower(reg, vllm_server, state)
    try:
        first = out.get(timeout=120)  # the deploy at start
        assert list(first["plan"]["load"]) == ["bot@production"] and first["moves"] == {"bot@production": [None, 1]}
        assert _tokens(vllm_server, "bot@production", prompt) == _peft_tokens(engine_llama, engine_adapter, prompt)
        v1_root = _served(vllm_server)["bot@production"]

        reg.release.set_alias("bot", "production", 2)
        reg.release.set_alias("faq", "production", 1)
        wait_for(lambda: set(_served(vllm_server)) == {"bot@production", "faq@production"}
                 and _served(vllm_server)["bot@production"] != v1_root, timeout=120, every=0.5,
                 what="the follower to serve bot@2 and faq@1")
        assert _tokens(vllm_server, "bot@production", prompt) == _peft_tokens(engine_llama, second, prompt)
        wait_for(lambda: int(state.read_text()) == reg.release.events()[-1].id if state.is_file() else False,
                 timeout=30, what="the state file to reach the last event")
    finally:
        proc.terminate()
        proc.wait(30)

    # moved while no follower ran: the next one resumes after the state's event id and catches up
    handled = int(state.read_text())
    reg.release.set_alias("bot", "production", 1)
    reg.release.remove_alias("faq", "production")
    proc, out = _follower(reg, vllm_server, state)
    try:
        resumed = out.get(timeout=120)
        assert resumed["moves"] == {"bot@production": [2, 1], "faq@production": [1, None]}
        assert resumed["last_event_id"] > handled
        assert list(resumed["plan"]["load"]) == ["bot@production"]
        assert sorted(resumed["plan"]["unload"]) == ["bot@production", "faq@production"]
        assert set(_served(vllm_server)) == {"bot@production"}
        assert _tokens(vllm_server, "bot@production", prompt) == _peft_tokens(engine_llama, engine_adapter, prompt)
    finally:
        proc.terminate()
        proc.wait(30)

    proc, out = _follower(reg, vllm_server, state)  # nothing new: a deploy that changes nothing
    try:
        again = out.get(timeout=120)
        assert again["moves"] == {} and again["plan"]["load"] == {} and again["plan"]["unload"] == []
        assert again["plan"]["keep"] == ["bot@production"]
    finally:
        proc.terminate()
        proc.wait(30)
