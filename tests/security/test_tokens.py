"""Token escalation: a token creates only tokens within its own scope and namespace, a namespaced
admin administers its namespace only, and `token revoke` takes an id or --name, never guessing."""

from __future__ import annotations

import json

import pytest

from registry.errors import Forbidden, InvalidInput, TokenNotFound
from tests.factories import run_cli


# -- over HTTP, as a hostile namespaced admin -------------------------------------------------------
def test_namespaced_admin_cannot_create_a_global_admin_token(fresh_tenants):
    from tests.security.conftest import make_client

    t = fresh_tenants
    with make_client(t.registry, open_reads=True) as c:
        r = c.post("/api/v1/tokens", json={"name": "escalated", "scope": "admin"}, headers=t.headers("ns_admin"))
        assert r.status_code == 403, r.text
        assert "team-a" in r.json()["message"]
        r = c.post("/api/v1/tokens", json={"name": "escalated", "scope": "admin", "namespace": "team-b"},
                   headers=t.headers("ns_admin"))
        assert r.status_code == 403
        assert "escalated" not in [x.name for x in t.registry.tokens.list()]
        r = c.post("/api/v1/tokens", json={"name": "a-ci", "scope": "write", "namespace": "team-a"},
                   headers=t.headers("ns_admin"))
        assert r.status_code == 201 and r.json()["info"]["namespace"] == "team-a"


def test_a_token_never_creates_a_token_with_a_larger_scope():
    from registry.tokens import check_grant

    with pytest.raises(Forbidden, match="scope write"):
        check_grant(_info("write", None), "admin", None)
    with pytest.raises(Forbidden, match="limited to team-a"):
        check_grant(_info("admin", "team-a"), "read", None)
    with pytest.raises(Forbidden, match="limited to team-a"):
        check_grant(_info("admin", "team-a"), "read", "team-ab")
    check_grant(_info("admin", "team-a"), "admin", "team-a")
    check_grant(_info("admin", None), "admin", "team-b")


def _info(scope: str, namespace: str | None):
    import datetime as dt

    from registry.tokens import TokenInfo

    return TokenInfo(1, "caller", scope, namespace, dt.datetime(2024, 1, 1), "x", None, None)


def test_namespaced_admin_lists_and_revokes_only_its_namespaces_tokens(fresh_tenants):
    from tests.security.conftest import make_client

    t = fresh_tenants
    with make_client(t.registry, open_reads=True) as c:
        h = t.headers("ns_admin")
        listed = c.get("/api/v1/tokens", headers=h).json()
        assert listed and {x["namespace"] for x in listed} == {"team-a"}
        r = c.delete(f"/api/v1/tokens/{t.ids['write_other']}", headers=h)
        assert r.status_code == 404 and r.json()["error"] == "token_not_found"
        assert c.delete("/api/v1/tokens", params={"name": "b-bot"}, headers=h).status_code == 404
        assert c.delete(f"/api/v1/tokens/{t.ids['admin']}", headers=h).status_code == 404
        assert c.get("/api/v1/adapters", headers=t.headers("write_other")).status_code == 200  # still works
        assert c.delete(f"/api/v1/tokens/{t.ids['write']}", headers=h).status_code == 200
        assert c.get("/api/v1/adapters", headers=t.headers("write")).status_code == 401
        # the unrestricted admin still administers everyone
        assert c.delete("/api/v1/tokens", params={"name": "b-bot"}, headers=t.headers("admin")).status_code == 200


def test_namespaced_admin_reads_only_its_namespaces_audit_entries(fresh_tenants):
    from tests.security.conftest import make_client

    t = fresh_tenants
    with make_client(t.registry, open_reads=True) as c:
        entries = c.get("/api/v1/audit", params={"limit": 1000}, headers=t.headers("ns_admin")).json()
        targets = {e["target"] for e in entries}
        assert "team-a/bot@1" in targets
        assert not [x for x in targets if not (x.startswith("team-a/") or x.startswith("token:"))], targets
        assert "token:b-bot" not in targets and "token:root" not in targets and "token:a-bot" in targets
        everything = c.get("/api/v1/audit", params={"limit": 1000}, headers=t.headers("admin")).json()
        assert "team-b/bot@1" in {e["target"] for e in everything}
        assert c.get("/api/v1/audit", headers=t.headers("write")).status_code == 403


def test_the_audit_target_filter_is_a_literal_prefix(fresh_tenants):
    from registry.catalog import queries as Q

    with fresh_tenants.registry.db.read() as s:
        assert Q.audit(s, target="team_b/") == []
        assert Q.audit(s, target="team-b/")


# -- revoke by id or by name, never guessing --------------------------------------------------------
def test_revoke_by_id_never_revokes_a_token_named_like_that_id(registry):
    t = registry.tokens
    first = t.create("first", scope="read")
    named = t.create(str(first.info.id + 5), scope="read")  # a token whose *name* is some other id
    assert t.revoke(first.info.id).name == "first"
    with pytest.raises(TokenNotFound, match=f"id {first.info.id + 5}"):
        t.revoke(first.info.id + 5)
    assert [x.name for x in t.list()] == [named.info.name]
    assert t.revoke(name=named.info.name).id == named.info.id


def test_revoke_takes_an_id_or_a_name_not_both_nor_neither(registry):
    with pytest.raises(InvalidInput):
        registry.tokens.revoke()
    with pytest.raises(InvalidInput):
        registry.tokens.revoke(1, name="x")


def test_cli_token_revoke_number_means_the_id_and_name_needs_the_flag(tmp_path):
    env = {"ADAPTER_REGISTRY_HOME": str(tmp_path / "home")}
    first = json.loads(run_cli("token", "create", "--name", "first", "--json", env=env).stdout)["info"]
    other = str(first["id"] + 1)
    run_cli("token", "create", "--name", "decoy", env=env)  # gets id first+1
    run_cli("token", "create", "--name", str(first["id"]), env=env)  # named like first's id
    r = run_cli("token", "revoke", str(first["id"]), "--json", env=env)
    assert r.returncode == 0 and json.loads(r.stdout)["name"] == "first"
    r = run_cli("token", "revoke", "--name", str(first["id"]), "--json", env=env)
    assert r.returncode == 0 and json.loads(r.stdout)["name"] == str(first["id"])
    r = run_cli("token", "revoke", "--name", "decoy", env=env)
    assert r.returncode == 0 and f"id {other}" in r.stdout
    r = run_cli("token", "revoke", env=env)
    assert r.returncode == 2 and "give a token id or --name" in r.stderr
    r = run_cli("token", "revoke", "9999", env=env)
    assert r.returncode == 3 and "no active token with id 9999" in r.stderr
