"""Writes over HTTP: push (streamed multipart), evals, base by reference; each audited with the token."""

from __future__ import annotations

import dataclasses

from tests.factories import adapter_files, add_target, bearer


def test_push_uploads_the_folder_and_a_second_push_of_the_same_files_returns_the_same_version(
        client, api_registry, tokens, tiny_adapter2):
    files = adapter_files(tiny_adapter2)
    r = client.post("/api/v1/adapters/team-a/new/versions", files=files,
                    data={"base": "tiny-llama", "tag": ["task=x", "team=a"], "description": "hi"},
                    headers=bearer(tokens.write))
    assert r.status_code == 201, r.text
    v = r.json()
    assert (v["name"], v["version"], v["created"], v["rank"]) == ("team-a/new", 1, True, 8)
    assert v["tags"] == {"task": "x", "team": "a"} and v["base"]["name"] == "tiny-llama"
    local = api_registry.show("team-a/new@1")
    assert v["content_digest"] == local.content_digest and local.created_by == "ci-bot"
    again = client.post("/api/v1/adapters/team-a/new/versions", files=files, headers=bearer(tokens.write))
    assert again.status_code == 200 and again.json()["version"] == 1 and again.json()["created"] is False
    leftovers = list((api_registry.settings.home / "tmp" / "uploads").iterdir())
    assert leftovers == []
    assert ("version.create", "team-a/new@1", "ci-bot") in {(a.action, a.target, a.actor)
                                                            for a in api_registry.audit(limit=5)}


def test_push_of_a_trainer_folder_keeps_its_loss_curve(client, api_registry, tokens, tiny_adapter, tmp_path):
    from registry.testing.tiny import write_trainer_output

    out = write_trainer_output(tiny_adapter, tmp_path / "run", steps=(5, 10))
    r = client.post("/api/v1/adapters/team-a/trained/versions", files=adapter_files(out), headers=bearer(tokens.write))
    assert r.status_code == 201, r.text
    assert len(api_registry.show("team-a/trained").training["loss_curve"]) == 10


def test_push_past_the_upload_limit_is_413_and_leaves_nothing(api_registry, tokens, tiny_adapter):
    from fastapi.testclient import TestClient

    from registry.api import create_app

    app = create_app(api_registry, dataclasses.replace(api_registry.settings, max_upload_bytes=2000))
    with TestClient(app) as c:
        r = c.post("/api/v1/adapters/team-a/big/versions", files=adapter_files(tiny_adapter),
                   headers=bearer(tokens.write))
        assert r.status_code == 413 and r.json()["error"] == "too_large"

        def chunks():  # no Content-Length: the limit is enforced while streaming
            body = b"--b\r\nContent-Disposition: form-data; name=\"files\"; filename=\"w.bin\"\r\n\r\n"
            yield body
            for _ in range(10):
                yield b"x" * 1000

        r = c.post("/api/v1/adapters/team-a/big/versions", content=chunks(),
                   headers={**bearer(tokens.write), "Content-Type": "multipart/form-data; boundary=b"})
        assert r.status_code == 413
    assert list((api_registry.settings.home / "tmp" / "uploads").iterdir()) == []
    assert client_search_names(api_registry) == {"team-a/bot", "team-b/bot"}


def client_search_names(reg) -> set[str]:
    return {v.name for v in reg.search().items}


def test_push_refuses_unsafe_names_bad_folders_and_pickles(client, tokens, tiny_adapter):
    h = bearer(tokens.write)
    r = client.post("/api/v1/adapters/team-a/x/versions", files=[("files", ("../evil", b"x", "text/plain"))], headers=h)
    assert r.status_code == 400 and "safe relative" in r.json()["message"]
    r = client.post("/api/v1/adapters/team-a/x/versions", files=[("files", ("notes.txt", b"x", "text/plain"))],
                    headers=h)
    assert r.status_code == 400 and r.json()["error"] == "invalid_adapter"
    cfg = (tiny_adapter / "adapter_config.json").read_bytes()
    r = client.post("/api/v1/adapters/team-a/x/versions", headers=h, files=[
        ("files", ("adapter_config.json", cfg, "application/json")), ("files", ("adapter_model.bin", b"PK", "x"))])
    assert r.status_code == 400 and r.json()["error"] == "unsafe_format"
    r = client.post("/api/v1/adapters/team-a/x/versions", headers=h, content=b"{}",
                    params={}, data=None)
    assert r.status_code == 400
    r = client.post("/api/v1/adapters/team-a/x/versions",
                    headers={**h, "Content-Type": "multipart/form-data; boundary=zz"},
                    content=b"--zz\r\nContent-Disposition: form-data; name=\"files\"; filename=\"a\"\r\n\r\nabc")
    assert r.status_code == 400 and "ended early" in r.json()["message"]


def test_push_against_an_incompatible_base_is_422(client, api_registry, tokens, tiny_llama_other, tiny_adapter):
    api_registry.add_base(tiny_llama_other, name="other")
    r = client.post("/api/v1/adapters/team-a/x/versions", files=adapter_files(tiny_adapter), data={"base": "other"},
                    headers=bearer(tokens.write))
    assert r.status_code == 422 and r.json()["error"] == "incompatible"


def test_evals_and_base_registration_are_recorded_with_the_token_name(client, api_registry, tokens, tiny_llama):
    r = client.post("/api/v1/adapters/team-a/bot/versions/1/evals", json={"metrics": {"f1": 0.25}, "dataset": "d"},
                    headers=bearer(tokens.team_a))
    assert r.status_code == 201 and r.json()[0]["created_by"] == "team-a-bot"
    assert api_registry.show("team-a/bot@1").metrics == {"acc": 0.5, "f1": 0.25}
    add_target(api_registry, f"dir://{tiny_llama.parent}", namespace="team-a", kind="base")
    r = client.post("/api/v1/bases", json={"name": "team-a/llama", "path": str(tiny_llama)},
                    headers=bearer(tokens.team_a))
    assert r.status_code == 201 and r.json()["created_by"] == "team-a-bot"
    again = client.post("/api/v1/bases", json={"name": "team-a/llama", "path": str(tiny_llama)},
                        headers=bearer(tokens.team_a))
    assert again.status_code == 200
    actors = {(a.action, a.target, a.actor) for a in api_registry.audit(limit=20)}
    assert {("eval.add", "team-a/bot@1", "team-a-bot"), ("base.add", "team-a/llama@" + r.json()["fingerprint"][:12],
                                                          "team-a-bot")} <= actors


def test_bad_eval_values_are_refused_with_the_error_shape(client, tokens):
    h = bearer(tokens.write)
    r = client.post("/api/v1/adapters/team-a/bot/versions/1/evals", json={"metrics": {}}, headers=h)
    assert r.status_code == 422 and r.json()["error"] == "invalid_request"
    r = client.post("/api/v1/adapters/team-a/bot/versions/1/evals", json={"metrics": {"bad name!": 1}}, headers=h)
    assert r.status_code == 400 and r.json()["error"] == "invalid_input"
    r = client.post("/api/v1/adapters/team-a/bot/versions/1/evals", content=b"{not json", headers=h)
    assert r.status_code == 422


def test_admin_manages_tokens_over_http_and_reads_the_audit_log(client, api_registry, tokens):
    h = bearer(tokens.admin)
    r = client.post("/api/v1/tokens", json={"name": "new-bot", "scope": "read"}, headers=h)
    assert r.status_code == 201 and r.json()["token"].startswith("arg_")
    secret = r.json()["token"]
    assert client.get("/api/v1/adapters", headers=bearer(secret)).status_code == 200
    assert client.post("/api/v1/tokens", json={"name": "new-bot", "scope": "read"}, headers=h).status_code == 409
    names = [t["name"] for t in client.get("/api/v1/tokens", headers=h).json()]
    assert "new-bot" in names and all("token" not in t and "token_hash" not in t for t in
                                      client.get("/api/v1/tokens", headers=h).json())
    assert client.delete("/api/v1/tokens", params={"name": "new-bot"}, headers=h).status_code == 200
    assert client.get("/api/v1/adapters", headers=bearer(secret)).status_code == 401
    assert client.delete("/api/v1/tokens", params={"name": "new-bot"}, headers=h).json()["error"] == "token_not_found"
    assert client.delete(f"/api/v1/tokens/{r.json()['info']['id']}", headers=h).json()["error"] == "token_not_found"
    assert client.delete("/api/v1/tokens/new-bot", headers=h).status_code == 422  # an id is a number
    audit = client.get("/api/v1/audit", params={"target": "token:new-bot"}, headers=h).json()
    assert [(a["action"], a["actor"]) for a in audit] == [("token.revoke", "root"), ("token.create", "root")]
