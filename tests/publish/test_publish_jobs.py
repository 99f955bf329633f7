"""Publishing as a job: merge if needed, require a verified merge, publish, record the publication."""

from __future__ import annotations

import json

import pytest

from registry.errors import PolicyViolation
from tests.factories import cli_env, push, run_cli
from tests.publish.fakehub import serve


def test_publish_job_merges_publishes_and_records_the_publication(registry, tiny_llama, tiny_adapter, tmp_path):
    from transformers import AutoModelForCausalLM

    ref = push(registry, tiny_llama, tiny_adapter)
    assert registry.jobs.verify(ref, inline=True).result["passed"]
    dest = tmp_path / "shipped" / "bot-v1"
    job = registry.jobs.publish(ref, to=f"dir://{dest}", inline=True)
    assert job.state == "succeeded", job.error
    assert job.result["verified_by"].startswith("verification:") and not job.result["forced"]
    [pub] = registry.show(ref).publications
    assert (pub.target, pub.uri, pub.forced, pub.actor) == ("dir", f"dir://{dest}", False, "tester")
    assert pub.manifest_digest == job.result["manifest_digest"]
    [merged] = registry.show(ref).merged
    assert json.loads((dest / "manifest.json").read_text())["files"]  # the merged folder, manifest and all
    AutoModelForCausalLM.from_pretrained(dest)
    assert merged.dtype == "float32"


def test_publish_without_a_verified_merge_is_refused_unless_forced(sqlite_registry, tiny_llama, tiny_adapter,
                                                                   tmp_path):
    reg = sqlite_registry
    ref = push(reg, tiny_llama, tiny_adapter)
    with pytest.raises(PolicyViolation) as e:
        reg.jobs.publish(ref, to=f"dir://{tmp_path / 'x'}")
    assert "verify" in e.value.hint and reg.jobs.list() == []
    job = reg.jobs.publish(ref, to=f"dir://{tmp_path / 'x'}", force=True, inline=True)
    assert job.state == "succeeded" and job.result["forced"]
    assert reg.show(ref).publications[0].forced


def test_merge_async_of_a_cached_merge_returns_a_finished_job(sqlite_registry, tiny_llama, tiny_adapter):
    reg = sqlite_registry
    ref = push(reg, tiny_llama, tiny_adapter)
    first = reg.jobs.merge_async(ref, dtype="fp32")
    assert first.state == "queued" and reg.jobs.merge_async(ref, dtype="float32").id == first.id
    done = reg.jobs.run(first.id)
    assert done.state == "succeeded" and done.result["created"]
    again = reg.jobs.merge_async(ref, dtype="fp32")
    assert again.state == "succeeded" and again.id != first.id and again.result["merged_id"] == done.result["merged_id"]


def test_cli_publishes_to_the_hub_endpoint_from_settings_in_one_commit(sqlite_registry, tiny_llama, tiny_adapter,
                                                                        monkeypatch):
    from huggingface_hub import constants

    reg = sqlite_registry
    ref = push(reg, tiny_llama, tiny_adapter)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)  # read once at import: the env var comes too late
    hub, server = serve()
    try:
        env = cli_env(reg.settings, ADAPTER_REGISTRY_HF_ENDPOINT=hub.url, HF_TOKEN="hf_cli_token",
                      HF_HUB_DISABLE_XET="1")
        out = run_cli("publish", ref, "--to", "hf://team/bot", "--force", "--inline", "--json", env=env)
        assert out.returncode == 0, out.stderr[-2000:]
        job = json.loads(out.stdout)
        assert job["state"] == "succeeded" and job["result"]["uri"] == "hf://team/bot@main"
        assert [p for _m, p in hub.requests if "/commit/" in p] == ["/api/models/team/bot/commit/main"]
        [pub] = reg.show(ref).publications
        assert pub.target == "hf" and pub.revision == hub.repos["team/bot"].branches["main"] and pub.forced
        assert "manifest.json" in hub.files_at("team/bot")
    finally:
        server.shutdown()
