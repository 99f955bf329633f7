"""Bulk operations by search query, all or nothing in one transaction (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from registry.catalog import models as M
from registry.errors import InvalidInput, PolicyViolation
from tests.factories import add_verification


@pytest.fixture
def fleet(rel, tiny_llama, tiny_llama_other, adapters, models_dir):
    """On llama: bot@1..3 (1, 2 verified), chat@1..2 (1 verified). On other: misc@1."""
    from registry.testing.tiny import build_adapter

    rel.add_base(tiny_llama, name="llama")
    rel.add_base(tiny_llama_other, name="other")
    for a in adapters[:3]:
        rel.push(a, name="bot", base="llama", tags=["team=a"])
    for a in adapters[3:5]:
        rel.push(a, name="chat", base="llama", tags=["team=b"])
    rel.push(build_adapter(tiny_llama_other, models_dir / "rel-bulk-other", r=4, seed=3), name="misc", base="other")
    for ref in ("bot@1", "bot@2", "chat@1"):
        add_verification(rel, ref)
    rel.release.set_alias("bot", "production", 1)
    return rel


def test_bulk_tag_sets_tags_on_every_match_and_reports_each(fleet):
    res = fleet.release.bulk_tag({"base": "llama", "tags": ["team=a"]}, tags=["tier=gold"])
    assert res.matched == 3 and res.changed == 3
    assert {i.ref for i in res.items} == {"bot@1", "bot@2", "bot@3"}
    assert [v.ref for v in fleet.search(tags=["tier=gold"]).items] == ["bot@3", "bot@2", "bot@1"]
    again = fleet.release.bulk_tag({"base": "llama", "tags": ["team=a"]}, tags={"tier": "gold"}, remove=["team"])
    assert all(i.action == "tagged" and "-team" in i.detail for i in again.items)
    assert fleet.search(tags=["team=a"]).items == ()


def test_bulk_dry_run_reports_the_plan_and_changes_nothing(fleet):
    res = fleet.release.bulk_deprecate({"name": "chat"}, reason="old", dry_run=True)
    assert res.dry_run and [i.action for i in res.items] == ["deprecated", "deprecated"]
    assert len(fleet.search(name="chat").items) == 2


def test_bulk_deprecate_hides_every_match(fleet):
    res = fleet.release.bulk_deprecate({"name": "chat"}, reason="replaced")
    assert res.changed == 2 and fleet.search(name="chat").items == ()
    assert fleet.release.bulk_deprecate({"name": "chat", "include_deprecated": True}).changed == 0


def test_bulk_promote_moves_production_of_every_adapter_of_a_base_to_its_latest_verified_version(fleet):
    res = fleet.release.bulk_promote({"base": "llama"}, alias="production", reason="weekly")
    assert {(i.ref, i.action) for i in res.items} == {("bot@2", "promoted"), ("chat@1", "promoted")}
    assert fleet.get("bot@production").version == 2 and fleet.get("chat@production").version == 1
    assert fleet.release.alias_history("bot", "production")[-1].reason == "weekly"
    latest = fleet.release.bulk_promote({"name": "bot"}, alias="canary", select="latest")
    assert [i.ref for i in latest.items] == ["bot@3"]


def test_bulk_promote_refused_for_one_adapter_changes_nothing_for_any(fleet):
    fleet.release.protect_alias("chat", "production", require_metrics=["mmlu>=0.62"])
    with fleet.db.read() as s:
        before = (s.scalar(select(func.count()).select_from(M.AliasHistory)),
                  s.scalar(select(func.count()).select_from(M.Event)))
    with pytest.raises(PolicyViolation) as e:
        fleet.release.bulk_promote({"base": "llama"}, alias="production")
    assert e.value.violations == ["chat@1: mmlu has no value (needs >= 0.62)"]
    assert fleet.get("bot@production").version == 1  # bot's move was rolled back too
    with fleet.db.read() as s:
        assert before == (s.scalar(select(func.count()).select_from(M.AliasHistory)),
                          s.scalar(select(func.count()).select_from(M.Event)))
    forced = fleet.release.bulk_promote({"base": "llama"}, alias="production", force=True)
    assert {i.ref for i in forced.items} == {"bot@2", "chat@1"}
    assert fleet.release.alias_history("chat", "production")[-1].overridden


def test_bulk_reverify_queues_one_job_per_match_in_one_transaction(fleet):
    res = fleet.release.bulk_reverify({"base": "llama", "tags": ["team=b"]})
    assert len(res.jobs) == 2 and [i.action for i in res.items] == ["enqueued", "enqueued"]
    with fleet.db.read() as s:
        assert sorted(j.payload["ref"] for j in s.scalars(select(M.Job))) == ["chat@1", "chat@2"]


def test_bulk_query_with_an_unknown_field_is_refused(fleet):
    with pytest.raises(InvalidInput, match="colour"):
        fleet.release.bulk_tag({"colour": "red"}, tags=["a=b"])
