"""Reads over HTTP return the same JSON shapes as the result types' to_dict()."""

from __future__ import annotations

import pytest


@pytest.fixture
def client(shared):
    return shared.client


@pytest.fixture
def api_registry(shared):
    return shared.registry


@pytest.fixture
def tokens(shared):
    return shared.tokens


def test_search_lists_versions_newest_first_with_the_filters_of_ls(client, api_registry):
    page = client.get("/api/v1/adapters", params={"count": True}).json()
    assert [(v["name"], v["version"]) for v in page["items"]] == [("team-b/bot", 1), ("team-a/bot", 2),
                                                                  ("team-a/bot", 1)]
    assert page["total"] == 3
    narrowed = client.get("/api/v1/adapters", params={"name": "team-a/", "min_rank": 8}).json()
    assert [(v["name"], v["version"]) for v in narrowed["items"]] == [("team-a/bot", 2)]
    tagged = client.get("/api/v1/adapters", params={"tag": "task=support"}).json()
    assert [(v["name"], v["version"]) for v in tagged["items"]] == [("team-a/bot", 1)]
    metric = client.get("/api/v1/adapters", params=[("metric", "acc>=0.6"), ("sort", "metric:acc")]).json()
    assert [(v["name"], v["version"]) for v in metric["items"]] == [("team-a/bot", 2)]


def test_search_pages_are_stable_and_match_the_local_registry(client, api_registry):
    seen = []
    for offset in range(3):
        seen += client.get("/api/v1/adapters", params={"limit": 1, "offset": offset}).json()["items"]
    assert seen == api_registry.search().to_dict()["items"]


def test_show_version_by_number_alias_and_latest_equals_registry_show(client, api_registry):
    body = client.get("/api/v1/adapters/team-a/bot/versions/1").json()
    assert body == api_registry.show("team-a/bot@1").to_dict()
    assert client.get("/api/v1/adapters/team-a/bot/versions/latest").json()["version"] == 2
    assert [f["path"] for f in body["files"]] == [f.path for f in api_registry.show("team-a/bot@1").files]


def test_adapter_base_and_evals_endpoints(client, api_registry):
    a = client.get("/api/v1/adapters/team-a/bot").json()
    assert a["latest_version"] == 2 and [v["version"] for v in a["versions"]] == [2, 1]
    evs = client.get("/api/v1/adapters/team-a/bot/versions/2/evals").json()
    assert [(e["metric"], e["value"]) for e in evs] == [("acc", 0.7)]
    bases = client.get("/api/v1/bases").json()
    assert [b["name"] for b in bases] == ["tiny-llama"]
    assert client.get("/api/v1/bases/tiny-llama").json()["fingerprint"] == bases[0]["fingerprint"]


@pytest.mark.parametrize("path, status, code", [
    ("/api/v1/adapters/nope", 404, "adapter_not_found"),
    ("/api/v1/adapters/team-a/bot/versions/9", 404, "version_not_found"),
    ("/api/v1/adapters/Bad Name", 400, "invalid_name"),
    ("/api/v1/bases/nope", 404, "base_model_not_found"),
    ("/api/v1/adapters?sort=sideways", 400, "invalid_input"),
    ("/api/v1/adapters?limit=many", 422, "invalid_request"),
    ("/api/v1/blobs/xyz", 422, "invalid_request"),
    ("/api/v1/no-such-route", 404, "not_found"),
])
def test_every_error_has_the_one_json_shape(client, path, status, code):
    r = client.get(path)
    assert r.status_code == status
    body = r.json()
    assert body["error"] == code and body["status"] == status and isinstance(body["message"], str)
    assert set(body) <= {"error", "message", "status", "hint", "context"}


def test_closed_reads_need_a_token_and_namespace_tokens_read_their_namespace_only(api_registry, tokens):
    import dataclasses

    from fastapi.testclient import TestClient

    from registry.api import create_app
    from tests.factories import bearer

    app = create_app(api_registry, dataclasses.replace(api_registry.settings, open_reads=False))
    with TestClient(app) as c:
        r = c.get("/api/v1/adapters")
        assert r.status_code == 401 and r.json()["error"] == "unauthorized"
        assert r.headers["www-authenticate"] == "Bearer"
        assert c.get("/api/v1/adapters", headers=bearer(tokens.read)).status_code == 200
        mine = c.get("/api/v1/adapters", headers=bearer(tokens.team_a)).json()["items"]
        assert {v["name"] for v in mine} == {"team-a/bot"}
        assert c.get("/api/v1/adapters/team-b/bot", headers=bearer(tokens.team_a)).status_code == 403
        assert c.get("/api/v1/adapters/team-a/bot", headers=bearer(tokens.team_a)).status_code == 200


def test_a_bad_token_is_refused_even_where_reads_are_open(client, tokens):
    from tests.factories import bearer

    assert client.get("/api/v1/adapters", headers=bearer("arg_nonsense")).status_code == 401
    assert client.get("/api/v1/adapters", headers=bearer(tokens.revoked)).status_code == 401
    assert client.get("/api/v1/adapters", headers=bearer(tokens.read)).status_code == 200
