"""Closed reads are closed everywhere: with open_reads=false a team-a token reads team-a only, on
every route (jobs, blobs, pages, events, search, workers), and name prefixes are literal."""

from __future__ import annotations

import pytest


def _h(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


# -- jobs -----------------------------------------------------------------------------------------
def test_a_team_a_reader_lists_and_shows_only_team_a_jobs(tenants, closed_client):
    h = tenants.headers("read")
    refs = [j["payload"]["ref"] for j in closed_client.get("/api/v1/jobs", headers=h).json()]
    assert refs == ["team-a/bot@1"]
    assert closed_client.get(f"/api/v1/jobs/{tenants.team_a_job}", headers=h).status_code == 200
    r = closed_client.get(f"/api/v1/jobs/{tenants.team_b_job}", headers=h)
    assert r.status_code == 404 and r.json()["error"] == "job_not_found"
    everything = closed_client.get("/api/v1/jobs", headers=tenants.headers("admin")).json()
    assert {j["payload"]["ref"] for j in everything} == {"team-a/bot@1", "team-b/bot@1"}


def test_with_open_reads_every_reader_sees_every_job(tenants, open_client):
    assert len(open_client.get("/api/v1/jobs").json()) == 2


def test_a_namespace_with_an_underscore_sees_nothing_of_the_namespace_with_a_dash(tenants, closed_client):
    h = _h(tenants.underscore)
    assert closed_client.get("/api/v1/jobs", headers=h).json() == []
    assert closed_client.get("/api/v1/adapters", headers=h).json()["items"] == []
    assert closed_client.get("/api/v1/events", headers=h).json() == []
    assert "team-b/bot" not in closed_client.get("/", headers=h).text
    assert closed_client.get(f"/api/v1/blobs/{tenants.team_b_blob}", headers=h).status_code == 404


def test_search_prefix_is_literal(tenants):
    with tenants.registry.db.read() as s:
        from registry.catalog import queries as Q

        assert Q.search(s, Q.SearchQuery(name="team_b/")).items == ()
        assert [v.name for v in Q.search(s, Q.SearchQuery(name="team-b/")).items] == ["team-b/bot"]


# -- blobs ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("blob, status", [("team_a_blob", 200), ("team_b_blob", 404), ("team_b_merged_blob", 404),
                                          ("orphan_blob", 404)])
def test_a_team_a_reader_downloads_only_blobs_of_versions_it_may_read(tenants, closed_client, blob, status):
    digest = getattr(tenants, blob)
    r = closed_client.get(f"/api/v1/blobs/{digest}", headers=tenants.headers("read"))
    assert r.status_code == status, r.text
    assert closed_client.head(f"/api/v1/blobs/{digest}", headers=tenants.headers("read")).status_code == status


@pytest.mark.parametrize("blob, status", [("team_a_blob", 200), ("team_b_blob", 200), ("team_b_merged_blob", 200),
                                          ("orphan_blob", 404)])
def test_with_open_reads_a_blob_is_served_only_when_a_version_references_it(tenants, open_client, blob, status):
    assert open_client.get(f"/api/v1/blobs/{getattr(tenants, blob)}").status_code == status


def test_the_admin_downloads_any_stored_blob(tenants, closed_client):
    for digest in (tenants.team_b_blob, tenants.orphan_blob):
        assert closed_client.get(f"/api/v1/blobs/{digest}", headers=tenants.headers("admin")).status_code == 200


# -- pages ----------------------------------------------------------------------------------------
def test_the_catalog_page_never_lists_another_namespace(tenants, closed_client):
    h = tenants.headers("read")
    r = closed_client.get("/", params={"name": "team-b/"}, headers=h)
    assert r.status_code == 403 and "team-b/bot" not in r.text.replace("name=team-b/", "")
    r = closed_client.get("/", headers=h)
    assert r.status_code == 200 and "team-a/bot" in r.text and "team-b/bot" not in r.text


def test_the_jobs_page_shows_only_the_readers_jobs_and_no_workers_table_for_non_admins(tenants, closed_client):
    r = closed_client.get("/jobs", headers=tenants.headers("read"))
    assert r.status_code == 200 and "team-a/bot@1" in r.text and "team-b/bot" not in r.text


def test_the_adapter_page_of_another_namespace_is_refused(tenants, closed_client):
    assert closed_client.get("/adapters/team-b/bot", headers=tenants.headers("read")).status_code == 403
    assert closed_client.get("/adapters/team-a/bot", headers=tenants.headers("read")).status_code == 200


def test_bases_visible_to_a_namespace_are_those_its_versions_use(tenants):
    from registry.catalog import queries as Q

    with tenants.registry.db.read() as s:
        assert [b.name for b in Q.list_bases(s, namespace="team-a/")] == ["tiny-llama"]
        assert Q.list_bases(s, namespace="team-c/") == []
        assert Q.list_bases(s, namespace="team-c/", name="tiny-llama") == []


# -- events, workers, audit -----------------------------------------------------------------------
def test_a_team_a_reader_sees_only_team_a_events(tenants, closed_client):
    evs = closed_client.get("/api/v1/events", params={"limit": 1000}, headers=tenants.headers("read")).json()
    assert evs and all(e["subject"].startswith("team-a/") for e in evs), [e["subject"] for e in evs]


def test_workers_are_admin_only_when_reads_are_closed(tenants, closed_client, open_client):
    assert closed_client.get("/api/v1/workers", headers=tenants.headers("read")).status_code == 403
    assert closed_client.get("/api/v1/workers", headers=tenants.headers("ns_admin")).status_code == 200
    assert open_client.get("/api/v1/workers").status_code == 200


# -- job errors and results carry no server paths for non-admins ---------------------------------
def test_redact_paths_replaces_absolute_paths_and_leaves_urls_and_refs():
    from registry.api.views import redact_paths

    assert redact_paths("cannot read /srv/registry/cache/merged/ab12/model.safetensors: gone") == \
        "cannot read <server path>: gone"
    assert redact_paths("published to dir:///data/out/team-a") == "published to dir://<server path>"
    assert redact_paths("see https://hub.example/org/repo and team-a/bot@1") == \
        "see https://hub.example/org/repo and team-a/bot@1"
    assert redact_paths("'/home/x' and (/tmp/y)") == "'<server path>' and (<server path>)"
    assert redact_paths("ratio 1/2, bf16 / fp32") == "ratio 1/2, bf16 / fp32"
    assert redact_paths({"path": "/a/b", "n": 3, "items": ["/c"]}) == \
        {"path": "<server path>", "n": 3, "items": ["<server path>"]}


def test_a_failed_jobs_error_shows_paths_to_the_admin_only(fresh_tenants):
    from registry.catalog import models as M
    from tests.security.conftest import make_client

    t = fresh_tenants
    with t.registry.db.write() as s:
        job = s.get(M.Job, t.team_a_job)
        job.state, job.error = "failed", f"OSError: {t.registry.settings.home}/cache/merged/x is not readable"
        job.errors = [{"attempt": 1, "error": job.error}]
        job.result = {"path": f"{t.registry.settings.home}/cache/merged/x"}
    home = str(t.registry.settings.home)
    with make_client(t.registry, open_reads=True) as c:
        for r in (c.get(f"/api/v1/jobs/{t.team_a_job}"), c.get("/api/v1/jobs", headers=t.headers("write")),
                  c.get("/jobs", headers=t.headers("ns_admin"))):
            assert r.status_code == 200 and home not in r.text and "is not readable" in r.text
        assert home in c.get(f"/api/v1/jobs/{t.team_a_job}", headers=t.headers("admin")).text


def test_a_search_by_another_teams_base_is_the_same_404_as_an_unknown_base(fresh_tenants, tiny_llama):
    """?base= is no existence oracle: a team-a reader naming team-b's base gets the answer an unknown
    base gets (before: an empty page for team-b's, 404 for an unknown one)."""
    from tests.security.conftest import make_client

    reg = fresh_tenants.registry
    reg.add_base(tiny_llama, name="team-b/llama")
    client = make_client(reg, open_reads=False)
    h = fresh_tenants.headers("read")
    theirs = client.get("/api/v1/adapters", params={"base": "team-b/llama"}, headers=h)
    unknown = client.get("/api/v1/adapters", params={"base": "team-b/nothing"}, headers=h)
    assert (theirs.status_code, unknown.status_code) == (404, 404)
    assert theirs.json()["message"].replace("team-b/llama", "X") == \
        unknown.json()["message"].replace("team-b/nothing", "X")
    own = client.get("/api/v1/adapters", params={"base": "tiny-llama"}, headers=h)
    assert own.status_code == 200 and {v["name"] for v in own.json()["items"]} == {"team-a/bot"}
    admin = client.get("/api/v1/adapters", params={"base": "team-b/llama"}, headers=fresh_tenants.headers("admin"))
    assert admin.status_code == 200 and admin.json()["items"] == []
