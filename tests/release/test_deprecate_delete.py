"""Deprecation with a successor, and guarded deletion of versions (SQLite and PostgreSQL)."""

from __future__ import annotations

import warnings

import pytest

from registry.errors import Conflict, InvalidInput, PolicyViolation, VersionNotFound
from tests.factories import add_merged


@pytest.fixture
def bot(rel, tiny_llama, adapters):
    rel.add_base(tiny_llama, name="llama", revision="r1")
    for a in adapters[:3]:
        rel.push(a, name="bot", base="llama")
    return rel


def test_deprecate_with_successor_hides_it_from_search_and_resolve_warns(bot):
    v = bot.release.deprecate("bot@1", successor="bot@3", reason="bad tokenizer")
    assert v.deprecated and v.successor == "bot@3" and v.deprecation_reason == "bad tokenizer"
    assert [x.version for x in bot.search(name="bot").items] == [3, 2]
    assert [x.version for x in bot.search(name="bot", include_deprecated=True).items] == [3, 2, 1]
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        bot.resolve("bot@1")
    assert any("deprecated" in str(x.message) for x in w)
    assert [e.kind for e in bot.release.events()][-1] == "version.deprecate"


def test_deprecated_versions_stay_out_of_metric_search(bot):
    bot.add_eval("bot@1", {"acc": 0.9})
    bot.release.deprecate("bot@1")
    assert bot.search(metrics=["acc>=0.5"]).items == ()
    bot.release.undeprecate("bot@1")
    assert [x.version for x in bot.search(metrics=["acc>=0.5"]).items] == [1]
    assert bot.get("bot@1").successor is None


def test_a_version_cannot_succeed_itself_or_be_succeeded_by_a_deprecated_one(bot):
    with pytest.raises(InvalidInput):
        bot.release.deprecate("bot@2", successor="bot@2")
    bot.release.deprecate("bot@3")
    with pytest.raises(InvalidInput):
        bot.release.deprecate("bot@2", successor="bot@3")
    assert not bot.get("bot@2").deprecated


def test_a_version_holding_a_protected_alias_cannot_be_deleted_even_forced(bot):
    bot.release.set_alias("bot", "production", 2)
    bot.release.protect_alias("bot", "production")
    for force in (False, True):
        with pytest.raises(PolicyViolation, match="protected alias production"):
            bot.release.delete_version("bot@2", force=force)
    assert bot.get("bot@2").version == 2


def test_delete_is_refused_while_a_merged_artifact_or_publication_references_it_unless_forced(bot):
    add_merged(bot, "bot@1", files={"model.safetensors": "a" * 64}, publish=True)
    with pytest.raises(Conflict, match="1 merged artifact"):
        bot.release.delete_version("bot@1")
    res = bot.release.delete_version("bot@1", force=True)
    assert res.forced and res.merged_removed == 1 and res.publications_removed == 1
    with pytest.raises(VersionNotFound):
        bot.get("bot@1")


def test_delete_removes_unprotected_aliases_with_history_and_never_reuses_the_number(bot, tiny_llama, models_dir):
    from registry.testing.tiny import build_adapter

    bot.release.set_alias("bot", "staging", 3)
    bot.release.deprecate("bot@2", successor="bot@3")
    res = bot.release.delete_version("bot@3")
    assert res.aliases_removed == ("staging",)
    assert bot.release.alias_history("bot", "staging")[-1].to_version is None
    assert bot.get("bot@2").successor is None
    assert bot.release.events()[-1].kind == "version.delete"
    new = bot.push(build_adapter(tiny_llama, models_dir / "rel-del-new", r=4, seed=99), name="bot")
    assert new.version == 4
