"""Impact of a new base-model revision, and re-verification jobs for it (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from registry.catalog import models as M
from tests.factories import add_merged, add_verification


@pytest.fixture
def two_revisions(rel, tiny_llama, adapters):
    """bot@1 (verified on r1, production), bot@2 (never verified), chat@1 (verified on r1 and r2)."""
    rel.add_base(tiny_llama, name="llama", revision="r1")
    rel.push(adapters[0], name="bot", base="llama@r1")
    rel.push(adapters[1], name="bot", base="llama@r1")
    rel.push(adapters[2], name="chat", base="llama@r1")
    add_verification(rel, "bot@1")
    add_verification(rel, "chat@1")
    rel.release.set_alias("bot", "production", 1)
    add_merged(rel, "bot@1", files={"m.safetensors": "b" * 64})
    rel.add_base(tiny_llama, name="llama", revision="r2")
    add_verification(rel, "chat@1", base="llama@r2")
    return rel


def test_new_revision_lists_versions_aliases_and_merges_verified_only_against_the_old_one(two_revisions):
    rep = two_revisions.release.impact("llama")
    assert rep.base.revision == "r2" and [b.revision for b in rep.previous] == ["r1"]
    got = {v.ref: v for v in rep.versions}
    assert set(got) == {"bot@1", "bot@2"}  # chat@1 passed against r2 already
    assert got["bot@1"].verified_against == ("llama@r1",) and got["bot@1"].aliases == ("production",)
    assert "never verified" in got["bot@2"].reason
    assert rep.aliases == ("bot@production=1",)
    assert [m.ref for m in rep.merged] == ["bot@1"] and rep.jobs == ()
    assert rep.to_dict()["versions"][0]["base"]["revision"] == "r1"


def test_a_failed_verification_against_the_new_revision_still_counts_as_impacted(two_revisions):
    add_verification(two_revisions, "bot@1", base="llama@r2", passed=False)
    got = {v.ref: v.reason for v in two_revisions.release.impact("llama").versions}
    assert "failed" in got["bot@1"]
    add_verification(two_revisions, "bot@1", base="llama@r2", passed=True)
    assert "bot@1" not in {v.ref for v in two_revisions.release.impact("llama@r2").versions}


def test_impact_with_enqueue_queues_one_verify_job_per_version_and_is_idempotent(two_revisions):
    rep = two_revisions.release.impact("llama", enqueue=True)
    assert len(rep.jobs) == 2
    again = two_revisions.release.impact("llama", enqueue=True)
    assert sorted(again.jobs) == sorted(rep.jobs)
    with two_revisions.db.read() as s:
        jobs = list(s.scalars(select(M.Job).order_by(M.Job.id)))
    assert len(jobs) == 2 and {j.kind for j in jobs} == {"verify"}
    assert {j.payload["ref"] for j in jobs} == {"bot@1", "bot@2"}
    assert {j.payload["base"] for j in jobs} == {f"llama@{rep.base.fingerprint}"}
    assert all(j.unique_key.startswith("verify:") and j.unique_key.endswith(f"{rep.base.fingerprint}:default")
               for j in jobs)


def test_reverify_jobs_are_the_same_jobs_the_jobs_api_would_enqueue(two_revisions):
    rep = two_revisions.release.impact("llama", enqueue=True)
    job = two_revisions.jobs.verify("bot@1", base="llama@r2")
    assert not job.created and job.id in rep.jobs


def test_a_base_with_one_revision_impacts_nothing(rel, tiny_llama, adapters):
    rel.add_base(tiny_llama, name="solo")
    rel.push(adapters[0], name="x", base="solo")
    rep = rel.release.impact("solo")
    assert rep.versions == () and rep.previous == ()
