"""The events feed is not the audit log: token, webhook and gc events are for the unrestricted admin,
and what others see carries no webhook URL, secret, token name or server path."""

from __future__ import annotations

import json


def _feed(client, headers=None, **params) -> list[dict]:
    r = client.get("/api/v1/events", params={"limit": 1000, **params}, headers=headers or {})
    assert r.status_code == 200, r.text
    return r.json()


def _with_admin_events(t):
    rel = t.registry.release
    rel.add_webhook("https://hooks.example/secret-path-123", secret="s3cr3t", from_now=False)
    t.registry.tokens.create("deploy-bot", scope="write", namespace="team-a")
    return t


def test_anonymous_readers_see_only_public_catalog_events_without_names_urls_or_secrets(fresh_tenants):
    from tests.security.conftest import make_client

    t = _with_admin_events(fresh_tenants)
    with make_client(t.registry, open_reads=True) as c:
        for headers in ({}, t.headers("read"), t.headers("write"), t.headers("ns_admin")):
            evs = _feed(c, headers)
            kinds = {e["kind"] for e in evs}
            assert kinds and all(k.split(".")[0] in ("version", "alias", "eval", "merge", "base") for k in kinds)
            body = json.dumps(evs)
            for secret in ("hooks.example", "s3cr3t", "deploy-bot", "a-reader", "tester", '"actor"',
                           str(t.registry.settings.home)):
                assert secret not in body, secret
            moves = [e["payload"] for e in evs if e["kind"] == "alias.set"]
            assert moves and all(m["to"] == 1 for m in moves)  # what a move did stays
            # asking for the families by name changes nothing
            assert _feed(c, headers, kind=["token.", "webhook.add", "gc."]) == []


def test_the_admin_sees_every_event_in_full(fresh_tenants):
    from tests.security.conftest import make_client

    t = _with_admin_events(fresh_tenants)
    with make_client(t.registry, open_reads=True) as c:
        evs = _feed(c, t.headers("admin"))
        kinds = {e["kind"] for e in evs}
        assert {"token.create", "webhook.add", "version.create"} <= kinds
        assert "hooks.example" in json.dumps(evs) and all("actor" in e["payload"] for e in evs)


def test_paging_over_hidden_events_reaches_the_end(fresh_tenants):
    """Hidden events are skipped in SQL, so a page of `limit` is never cut short by them."""
    from tests.security.conftest import make_client

    t = fresh_tenants
    for i in range(5):
        t.registry.tokens.create(f"noise-{i}", scope="read")
    t.registry.add_eval("team-a/bot@2", {"acc": 0.8})
    with make_client(t.registry, open_reads=True) as c:
        seen, after = [], 0
        while page := _feed(c, after=after, limit=2):
            seen += page
            after = page[-1]["id"]
        assert seen[-1]["kind"] == "eval.add" and seen == _feed(c)


def test_the_local_operator_reads_the_whole_feed(fresh_tenants):
    t = _with_admin_events(fresh_tenants)
    kinds = {e.kind for e in t.registry.release.events(limit=1000)}
    assert {"token.create", "token.revoke", "webhook.add"} <= kinds


def test_with_closed_reads_a_namespaced_reader_sees_its_namespace_only(fresh_tenants):
    from tests.security.conftest import make_client

    t = fresh_tenants
    with make_client(t.registry, open_reads=False) as c:
        subjects = {e["subject"] for e in _feed(c, t.headers("read"))}
        assert subjects and all(x.startswith("team-a/") for x in subjects)
        assert any(x.startswith("team-b/") for x in (e["subject"] for e in _feed(c, t.headers("admin"))))
        assert c.get("/api/v1/events").status_code == 401
