"""Cache poisoning: one team's merged weights must never ship under another team's name."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from tests.factories import add_target, bearer


@pytest.fixture(scope="module")
def b_adapter(models_dir, tiny_llama) -> Path:
    """team-b's own adapter: other weights than team-a's, the same file names and sizes."""
    from registry.testing.tiny import build_adapter

    return build_adapter(tiny_llama, models_dir / "poison-team-b", r=4, seed=21)


@pytest.fixture(scope="module")
def b_reference(models_dir, tiny_llama, b_adapter) -> Path:
    """team-b's merge, made by the engine directly: what team-b must get."""
    from registry.merge import merge

    return merge(tiny_llama, b_adapter, models_dir / "poison-b-ref", dtype="float32").out_dir


def weights(folder: Path) -> str:
    return hashlib.sha256(b"".join(p.read_bytes() for p in sorted(folder.glob("*.safetensors")))).hexdigest()


@pytest.fixture
def teams(sqlite_registry, tiny_llama, tiny_adapter, b_adapter):
    from fastapi.testclient import TestClient

    from registry.api import create_app

    reg = sqlite_registry
    reg.add_base(tiny_llama, name="tiny-llama")
    reg.push(tiny_adapter, name="team-a/bot", base="tiny-llama")
    reg.push(b_adapter, name="team-b/bot", base="tiny-llama")
    t = reg.tokens
    secrets = {"a": t.create("team-a-bot", scope="write", namespace="team-a").token,
               "b": t.create("team-b-bot", scope="write", namespace="team-b").token,
               "admin": t.create("root", scope="admin").token}
    with TestClient(create_app(reg)) as client:
        yield reg, client, secrets


def team_b_key(client) -> str:
    """team-b's cache key, from fields any reader sees."""
    from registry.workflows.merge import cache_key, engine_version

    fp = client.get("/api/v1/bases/tiny-llama").json()["fingerprint"]
    digest = client.get("/api/v1/adapters/team-b/bot/versions/1").json()["content_digest"]
    return cache_key(fp, digest, "float32", engine_version("auto"), "cpu")


def verify(reg, client, name: str, secret: str) -> None:
    r = client.post(f"/api/v1/adapters/{name}/versions/1/verify", json={}, headers=bearer(secret))
    assert r.status_code in (200, 202), r.text
    job = reg.jobs.run(r.json()["id"])
    assert job.state == "succeeded" and job.result["passed"], job.error


def test_a_team_cannot_plant_its_weights_in_another_teams_merge_cache(teams, b_reference, tmp_path):
    """The chain of issue 10, through the HTTP API. On the code before it, team-a's publish wrote its
    merged folder at team-b's cache key, and team-b's publish shipped team-a's weights from it."""
    reg, client, secrets = teams
    # the worst an admin could configure: team-a's target holds the registry's home
    add_target(reg, f"dir://{tmp_path}", namespace="team-a")
    add_target(reg, f"dir://{tmp_path / 'team-b-ship'}", namespace="team-b")
    verify(reg, client, "team-a/bot", secrets["a"])
    planted = reg.settings.cache_dir / "merged" / team_b_key(client)
    r = client.post("/api/v1/adapters/team-a/bot/versions/1/publish", json={"to": f"dir://{planted}"},
                    headers=bearer(secrets["a"]))
    assert r.status_code == 403 and r.json()["error"] == "forbidden", r.text
    assert "cache" not in r.json()["message"].replace(str(planted), "")  # the refusal names no server folder
    assert not planted.exists() and reg.jobs.list(kind="publish") == []
    verify(reg, client, "team-b/bot", secrets["b"])
    out = tmp_path / "team-b-ship" / "v1"
    r = client.post("/api/v1/adapters/team-b/bot/versions/1/publish", json={"to": f"dir://{out}"},
                    headers=bearer(secrets["b"]))
    assert r.status_code == 202, r.text
    job = reg.jobs.run(r.json()["id"])
    assert job.state == "succeeded", job.error
    assert weights(out) == weights(b_reference)  # team-b's own weights, not team-a's
    assert job.result["manifest_digest"] == reg.show("team-b/bot@1").merged[0].manifest_digest
    shown = client.get(f"/api/v1/jobs/{job.id}", headers=bearer(secrets["b"])).json()
    assert str(reg.settings.home) not in json.dumps(shown)


def test_a_folder_planted_at_a_merge_cache_key_is_never_reused(teams, b_reference, models_dir, tiny_llama,
                                                                tiny_adapter, tmp_path):
    """Whoever put it there (a publish, a hand copy), a folder the registry did not write is rebuilt."""
    from registry.merge import merge

    reg, client, _secrets = teams
    a_merged = merge(tiny_llama, tiny_adapter, tmp_path / "a-merged", dtype="float32").out_dir
    planted = reg.settings.cache_dir / "merged" / team_b_key(client)
    planted.parent.mkdir(parents=True)
    shutil.copytree(a_merged, planted)
    m = reg.merge("team-b/bot@1", dtype="float32")
    assert weights(m.path) == weights(b_reference)
    job = reg.jobs.publish("team-b/bot@1", to=f"dir://{tmp_path / 'out'}", force=True, inline=True)
    assert job.state == "succeeded", job.error
    assert weights(tmp_path / "out") == weights(b_reference)


def flip_byte(path: Path, offset: int = -100) -> None:
    """Change one byte in place: same size, same name."""
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_tampered_file_in_the_merge_cache_is_not_published(teams, b_reference, tmp_path):
    reg, client, _secrets = teams
    m = reg.merge("team-b/bot@1", dtype="float32")
    [shard] = sorted(m.path.glob("*.safetensors"))
    flip_byte(shard)  # the same size: only its sha256 tells
    job = reg.jobs.publish("team-b/bot@1", to=f"dir://{tmp_path / 'out'}", force=True, inline=True)
    assert job.state == "succeeded", job.error
    assert weights(tmp_path / "out") == weights(b_reference)
    assert job.result["manifest_digest"] == reg.show("team-b/bot@1").merged[0].manifest_digest


def test_a_merge_cache_folder_whose_manifest_changed_is_rebuilt(teams, b_reference):
    reg, _client, _secrets = teams
    m = reg.merge("team-b/bot@1", dtype="float32")
    manifest = m.path / "manifest.json"
    flip_byte(manifest, offset=10)
    again = reg.merge("team-b/bot@1", dtype="float32")
    assert again.path == m.path and hashlib.sha256(manifest.read_bytes()).hexdigest() == m.manifest_digest
    assert weights(again.path) == weights(b_reference)


def test_merge_job_results_carry_no_server_paths(teams):
    reg, _client, _secrets = teams
    job = reg.jobs.merge_async("team-b/bot@1", dtype="float32", inline=True)
    assert job.state == "succeeded", job.error
    cached = reg.jobs.merge_async("team-b/bot@1", dtype="float32")
    for j in (job, cached):
        text = json.dumps(j.result)
        assert str(reg.settings.home) not in text and str(reg.settings.cache_dir) not in text
        assert j.result["manifest_digest"] and j.result["size_bytes"] > 0


def test_job_errors_carry_no_server_paths(teams):
    from tests.factories import corrupt

    reg, client, secrets = teams
    weights_blob = next(f.digest for f in reg.show("team-b/bot@1").files if f.path.endswith(".safetensors"))
    corrupt(reg.store, weights_blob)
    r = client.post("/api/v1/adapters/team-b/bot/versions/1/merge", json={"dtype": "fp32"},
                    headers=bearer(secrets["b"]))
    job = reg.jobs.run(r.json()["id"])
    error = job.errors[0]["error"]  # the first attempt's (the job is queued again: storage may heal)
    assert "IntegrityFailure" in error
    shown = json.dumps(client.get(f"/api/v1/jobs/{job.id}", headers=bearer(secrets["b"])).json())
    for folder in (reg.settings.home, reg.settings.store_url, reg.settings.cache_dir):
        assert str(folder) not in shown
    assert "<store>" in error  # what the message kept: which of the registry's folders


def test_an_adapter_folder_planted_in_the_resolve_cache_is_not_merged(teams, b_reference, tiny_adapter):
    """The adapter folder a merge reads is keyed by the version's public content digest too."""
    reg, _client, _secrets = teams
    digest = reg.show("team-b/bot@1").content_digest
    planted = reg.settings.cache_dir / "adapters" / digest
    planted.parent.mkdir(parents=True)
    shutil.copytree(tiny_adapter, planted)  # team-a's adapter: the same file names and sizes
    m = reg.merge("team-b/bot@1", dtype="float32")
    assert weights(m.path) == weights(b_reference)
