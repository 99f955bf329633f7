"""The API over an SQLite and a PostgreSQL catalog: tokens (aware datetimes), push over HTTP, search, show, audit."""

from __future__ import annotations

from tests.factories import adapter_files, bearer, make_tokens


def test_api_round_trip_on_sqlite_and_postgres(registry, tiny_llama, tiny_adapter):
    from fastapi.testclient import TestClient

    from registry.api import create_app

    registry.add_base(tiny_llama, name="tiny-llama")
    toks = make_tokens(registry)
    with TestClient(create_app(registry)) as c:
        r = c.post("/api/v1/adapters/team-a/pg/versions", files=adapter_files(tiny_adapter),
                   data={"base": "tiny-llama"}, headers=bearer(toks.team_a))
        assert r.status_code == 201, r.text
        again = c.post("/api/v1/adapters/team-a/pg/versions", files=adapter_files(tiny_adapter),
                       headers=bearer(toks.team_a))  # second use of the token: last_used_at already set
        assert again.status_code == 200
        assert c.get("/api/v1/adapters", params={"name": "team-a/"}).json()["items"][0]["name"] == "team-a/pg"
        assert c.get("/api/v1/adapters/team-a/pg/versions/1").json() == registry.show("team-a/pg@1").to_dict()
        assert c.get("/api/v1/adapters", headers=bearer(toks.revoked)).status_code == 401
        used = [t for t in c.get("/api/v1/tokens", headers=bearer(toks.admin)).json() if t["name"] == "team-a-bot"]
        assert used[0]["last_used_at"] is not None
    assert registry.audit(limit=1, target="team-a/pg")[0].actor == "team-a-bot"
