"""Jobs over HTTP: enqueue verify / merge / publish, follow, cancel, retry; workers."""

from __future__ import annotations

import pytest

from tests.factories import add_target, bearer

pytestmark = pytest.mark.usefixtures("needs_jobs")


@pytest.fixture
def needs_jobs(api_registry):
    if not hasattr(api_registry, "jobs"):
        pytest.skip("the job queue is not in this build")


def test_enqueue_verify_is_202_then_200_for_the_same_job_and_cancel_and_retry_work(client, api_registry, tokens):
    h = bearer(tokens.team_a)
    r = client.post("/api/v1/adapters/team-a/bot/versions/2/verify", json={}, headers=h)
    assert r.status_code == 202, r.text
    job = r.json()
    assert (job["kind"], job["state"], job["payload"]["ref"], job["created_by"]) == ("verify", "queued",
                                                                                  "team-a/bot@2", "team-a-bot")
    again = client.post("/api/v1/adapters/team-a/bot/versions/2/verify", headers=h)
    assert again.status_code == 200 and again.json()["id"] == job["id"]
    assert client.get(f"/api/v1/jobs/{job['id']}").json()["state"] == "queued"
    assert [j["id"] for j in client.get("/api/v1/jobs", params={"state": "queued"}).json()] == [job["id"], 1]
    assert client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=h).json()["state"] == "cancelled"
    assert client.post(f"/api/v1/jobs/{job['id']}/retry", headers=h).json()["state"] == "queued"
    # job 1 verifies team-b/bot: a team-a token may not cancel it
    r = client.post("/api/v1/jobs/1/cancel", headers=h)
    assert r.status_code == 403 and r.json()["error"] == "forbidden"
    assert client.get("/api/v1/jobs/999").json()["error"] == "job_not_found"


def test_merge_and_publish_enqueue_and_publish_needs_verification_or_admin_force(client, api_registry, tokens,
                                                                                 tmp_path):
    add_target(api_registry, f"dir://{tmp_path}", namespace="team-a")
    h = bearer(tokens.write)
    r = client.post("/api/v1/adapters/team-a/bot/versions/1/merge", json={"dtype": "fp32"}, headers=h)
    assert r.status_code == 202 and r.json()["kind"] == "merge"
    target = f"dir://{tmp_path / 'out'}"
    r = client.post("/api/v1/adapters/team-a/bot/versions/1/publish", json={"to": target}, headers=h)
    assert r.status_code == 409 and r.json()["error"] == "policy_violation"
    r = client.post("/api/v1/adapters/team-a/bot/versions/1/publish", json={"to": target, "force": True}, headers=h)
    assert r.status_code == 403
    r = client.post("/api/v1/adapters/team-a/bot/versions/1/publish", json={"to": target, "force": True},
                    headers=bearer(tokens.admin))
    assert r.status_code == 202 and r.json()["payload"]["force"] is True
    r = client.post("/api/v1/adapters/team-a/bot/versions/1/merge", json={"dtype": "int3"}, headers=h)
    assert r.status_code == 422 and r.json()["error"] == "invalid_request"


def test_workers_are_listed_after_one_ran(client, api_registry):
    assert client.get("/api/v1/workers").json() == []
    api_registry.jobs.cancel(1)
    api_registry.jobs.work(once=True)
    workers = client.get("/api/v1/workers", params={"stopped": True}).json()
    assert len(workers) == 1 and workers[0]["state"] == "stopped"
