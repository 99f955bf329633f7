"""Aliases, gates, history, deprecation and events over HTTP."""

from __future__ import annotations

import pytest

from tests.factories import bearer


@pytest.fixture(autouse=True)
def needs_release(api_registry):
    if not hasattr(api_registry, "release"):
        pytest.skip("release management is not in this build")


def test_alias_moves_are_listed_with_history_and_the_token_as_actor(client, api_registry, tokens):
    h = bearer(tokens.team_a)
    r = client.put("/api/v1/adapters/team-a/bot/aliases/production", json={"version": 1, "reason": "first"}, headers=h)
    assert r.status_code == 200, r.text
    assert (r.json()["to_version"], r.json()["changed"]) == (1, True)
    client.put("/api/v1/adapters/team-a/bot/aliases/production", json={"version": "latest"}, headers=h)
    aliases = client.get("/api/v1/adapters/team-a/bot/aliases").json()
    assert [(a["alias"], a["version"]) for a in aliases] == [("production", 2)]
    assert client.get("/api/v1/adapters/team-a/bot/versions/production").json()["version"] == 2
    hist = client.get("/api/v1/adapters/team-a/bot/aliases/history").json()
    assert [(m["from_version"], m["to_version"], m["actor"], m["reason"]) for m in hist] == [
        (None, 1, "team-a-bot", "first"), (1, 2, "team-a-bot", None)]
    r = client.delete("/api/v1/adapters/team-a/bot/aliases/production", params={"reason": "done"}, headers=h)
    assert r.status_code == 200 and r.json()["to_version"] is None
    assert client.get("/api/v1/adapters/nope/aliases").status_code == 404
    page = client.get("/adapters/team-a/bot").text
    assert 'id="alias-history"' in page and "first" in page and "team-a-bot" in page


def test_a_protected_alias_refuses_a_failing_version_unless_an_admin_forces_it(client, api_registry, tokens):
    api_registry.release.protect_alias("team-a/bot", "production", require_metrics=["acc>=0.6"])
    r = client.put("/api/v1/adapters/team-a/bot/aliases/production", json={"version": 1},
                   headers=bearer(tokens.write))
    assert r.status_code == 409 and r.json()["error"] == "policy_violation"
    r = client.put("/api/v1/adapters/team-a/bot/aliases/production", json={"version": 2},
                   headers=bearer(tokens.write))
    assert r.status_code == 200
    forced = {"version": 1, "force": True, "reason": "rollback"}
    assert client.put("/api/v1/adapters/team-a/bot/aliases/production", json=forced,
                      headers=bearer(tokens.write)).status_code == 403
    r = client.put("/api/v1/adapters/team-a/bot/aliases/production", json=forced, headers=bearer(tokens.admin))
    assert r.status_code == 200 and r.json()["overridden"] is True


def test_deprecate_hides_from_search_and_events_feed_the_changes(client, tokens):
    r = client.post("/api/v1/adapters/team-a/bot/versions/1/deprecate",
                    json={"reason": "old", "successor": "team-a/bot@2"}, headers=bearer(tokens.write))
    assert r.status_code == 200 and r.json()["deprecated"] is True and r.json()["successor"] == "team-a/bot@2"
    names = [(v["name"], v["version"]) for v in client.get("/api/v1/adapters").json()["items"]]
    assert ("team-a/bot", 1) not in names
    assert ("team-a/bot", 1) in [(v["name"], v["version"]) for v in
                                  client.get("/api/v1/adapters", params={"deprecated": True}).json()["items"]]
    evs = client.get("/api/v1/events").json()
    assert evs and evs[-1]["subject"].startswith("team-a/bot@1")
    assert client.get("/api/v1/events", params={"after": evs[-1]["id"]}).json() == []
