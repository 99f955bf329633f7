"""Every write endpoint refuses a missing, revoked, read-only or wrong-namespace token."""

from __future__ import annotations

import re

import pytest

from tests.factories import bearer

WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
# Path parameters for each write route: names in team-b/, so a team-a token is out of its namespace.
PARAMS = {"name": "team-b/bot", "ref": "1", "token_id": "1", "id": "1", "job_id": "1", "alias": "production"}


def write_routes(app) -> list[tuple[str, str]]:
    """(METHOD, path) of every documented write operation (the OpenAPI schema is the list)."""
    return [(m.upper(), path) for path, ops in app.openapi()["paths"].items() for m in ops
            if m.upper() in WRITE_METHODS]


def fill(path: str) -> str:
    return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: PARAMS[m.group(1)], path)


def test_the_write_routes_are_the_ones_we_expect(shared):
    found = set(write_routes(shared.app))
    assert {("POST", "/api/v1/adapters/{name}/versions"), ("POST", "/api/v1/bases"),
            ("POST", "/api/v1/adapters/{name}/versions/{ref}/evals"), ("POST", "/api/v1/tokens"),
            ("DELETE", "/api/v1/tokens/{token_id}"), ("DELETE", "/api/v1/tokens")} <= found


@pytest.mark.parametrize("who, status", [("missing", 401), ("revoked", 401), ("bogus", 401), ("read", 403),
                                         ("team_a", 403)])
def test_write_endpoints_refuse(shared, who, status):
    app, client, api_registry, tokens = shared.app, shared.client, shared.registry, shared.tokens
    token = {"missing": None, "bogus": "arg_x", "revoked": tokens.revoked, "read": tokens.read,
             "team_a": tokens.team_a}[who]
    before = len(api_registry.audit(limit=1000))
    for method, path in write_routes(app):
        body = {"metrics": {"acc": 1.0}, "name": "team-b/x", "path": "/nonexistent", "scope": "read",
                "to": "dir:///nonexistent", "version": 1, "document": {}}
        kw = {"files": [("files", ("adapter_config.json", b"{}", "application/json"))]} \
            if path.endswith("/versions") else {"json": body}
        r = client.request(method, fill(path), headers=bearer(token), **kw)
        assert r.status_code == status, (who, method, path, r.text)
        assert r.json()["status"] == status and r.json()["error"] in ("unauthorized", "forbidden")
    assert len(api_registry.audit(limit=1000)) == before  # nothing was written
    if hasattr(api_registry, "jobs"):
        assert [(j.id, j.state) for j in api_registry.jobs.list()] == [(1, "queued")]


def test_write_token_may_write_only_its_namespace_and_admin_anywhere(client, tokens):
    body = {"metrics": {"acc": 0.9}}
    assert client.post("/api/v1/adapters/team-a/bot/versions/1/evals", json=body,
                       headers=bearer(tokens.team_a)).status_code == 201
    assert client.post("/api/v1/adapters/team-b/bot/versions/1/evals", json=body,
                       headers=bearer(tokens.write)).status_code == 201
    assert client.post("/api/v1/adapters/team-b/bot/versions/1/evals", json=body,
                       headers=bearer(tokens.admin)).status_code == 201
    assert client.post("/api/v1/tokens", json={"name": "x", "scope": "read"},
                       headers=bearer(tokens.write)).status_code == 403


def test_tokens_are_stored_hashed_and_shown_once(api_registry):
    from sqlalchemy import select

    from registry.catalog import models as M
    from registry.tokens import hash_token

    new = api_registry.tokens.create("ops", scope="write", namespace="team-a/*")
    assert new.info.namespace == "team-a" and new.token.startswith("arg_")
    with api_registry.db.read() as s:
        stored = list(s.scalars(select(M.ApiToken.token_hash)))
    assert hash_token(new.token) in stored and new.token not in stored
    assert "token" not in new.info.to_dict()
