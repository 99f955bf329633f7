"""Aliases: moves, history, protected aliases and their gates, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading

import pytest

from registry.app import Registry
from registry.errors import PolicyViolation, VersionNotFound
from tests.factories import add_verification


@pytest.fixture
def bot(rel, tiny_llama, adapters):
    """Adapter `bot` with versions 1..3 on base llama@r1."""
    rel.add_base(tiny_llama, name="llama", revision="r1")
    for a in adapters[:3]:
        rel.push(a, name="bot", base="llama")
    return rel


def _counts(reg):
    from sqlalchemy import func, select

    from registry.catalog import models as M

    with reg.db.read() as s:
        return {t.__tablename__: s.scalar(select(func.count()).select_from(t))
                for t in (M.Alias, M.AliasHistory, M.Event, M.AuditEntry)}


def test_set_alias_moves_it_and_history_records_from_to_who_why(bot):
    c1 = bot.release.set_alias("bot", "production", 1, reason="first release")
    c2 = bot.release.set_alias("bot", "production", "v2", reason="better")
    assert (c1.from_version, c1.to_version, c2.from_version, c2.to_version) == (None, 1, 1, 2)
    assert bot.get("bot@production").version == 2
    h = bot.release.alias_history("bot", "production")
    assert [(m.from_version, m.to_version, m.actor, m.reason) for m in h] == [
        (None, 1, "tester", "first release"), (1, 2, "tester", "better")]
    assert h[0].at <= h[1].at and not any(m.overridden for m in h)
    assert h[1].to_dict()["to_version"] == 2


def test_alias_can_be_set_from_another_alias_and_resolves_everywhere(bot):
    bot.release.set_alias("bot", "staging", 3)
    bot.release.set_alias("bot", "production", "staging")
    assert bot.get("bot@production").version == 3
    assert bot.show("bot@production").aliases == ("production", "staging")
    assert {a.alias: a.version for a in bot.release.aliases("bot")} == {"production": 3, "staging": 3}


def test_setting_an_alias_to_where_it_points_changes_nothing(bot):
    bot.release.set_alias("bot", "production", 1)
    before = _counts(bot)
    ch = bot.release.set_alias("bot", "production", 1)
    assert not ch.changed and _counts(bot) == before


def test_remove_alias_records_the_removal(bot):
    bot.release.set_alias("bot", "canary", 2)
    bot.release.remove_alias("bot", "canary", reason="done")
    with pytest.raises(VersionNotFound):
        bot.get("bot@canary")
    assert [(m.from_version, m.to_version) for m in bot.release.alias_history("bot")] == [(None, 2), (2, None)]
    with pytest.raises(VersionNotFound):
        bot.release.remove_alias("bot", "canary")


def test_refused_promotion_lists_reasons_and_leaves_nothing_changed(bot):
    bot.release.set_alias("bot", "production", 1)
    bot.release.protect_alias("bot", "production", require_verified=True, require_metrics=["mmlu>=0.62"])
    bot.add_eval("bot@2", {"mmlu": 0.58})
    before = _counts(bot)
    with pytest.raises(PolicyViolation) as e:
        bot.release.set_alias("bot", "production", 2)
    assert e.value.violations == ["bot@2 has no verification against llama@r1", "mmlu is 0.58, needs >= 0.62"]
    assert e.value.status == 409 and e.value.to_dict()["context"]["violations"] == e.value.violations
    assert bot.get("bot@production").version == 1
    assert _counts(bot) == before


def test_protected_alias_accepts_a_verified_version_meeting_the_threshold(bot):
    bot.release.protect_alias("bot", "production", require_verified=True, require_metrics=["mmlu>=0.62"])
    bot.add_eval("bot@2", {"mmlu": 0.7})
    add_verification(bot, "bot@2", passed=False)
    assert not bot.release.check_promotion("bot", "production", 2).allowed  # latest verification failed
    add_verification(bot, "bot@2", passed=True)
    ch = bot.release.set_alias("bot", "production", 2)
    assert ch.changed and ch.policy.allowed and not ch.overridden
    info = bot.release.alias_policy("bot", "production")
    assert info.current.allowed and info.require_metrics == ("mmlu>=0.62",)


def test_force_overrides_the_policy_and_the_override_is_recorded(bot):
    bot.release.protect_alias("bot", "production", require_verified=True)
    ch = bot.release.set_alias("bot", "production", 3, reason="hotfix", force=True)
    assert ch.overridden and bot.get("bot@production").version == 3
    h = bot.release.alias_history("bot", "production")[-1]
    assert h.overridden and h.violations == ("bot@3 has no verification against llama@r1",)
    ev = [e for e in bot.release.events() if e.kind == "alias.set"][-1]
    assert ev.subject == "bot@production" and ev.payload["overridden"] is True
    assert ev.payload["violations"] == list(h.violations)


def test_a_protected_alias_is_removed_only_with_force(bot):
    bot.release.set_alias("bot", "production", 1)
    bot.release.protect_alias("bot", "production")
    with pytest.raises(PolicyViolation):
        bot.release.remove_alias("bot", "production")
    assert bot.release.remove_alias("bot", "production", force=True).overridden


def test_protected_aliases_are_listed_with_their_current_evaluation(bot):
    bot.release.set_alias("bot", "production", 1)
    bot.release.protect_alias("bot", "production", require_metrics=["acc>=0.5"])
    bot.release.protect_alias("bot", "canary")  # points nowhere yet
    got = {a.alias: a for a in bot.release.aliases("bot")}
    assert got["production"].protected and not got["production"].policy.current.allowed
    assert got["canary"].version is None and got["canary"].policy.current is None
    assert bot.release.unprotect_alias("bot", "production") and not bot.release.aliases("bot")[0].protected


def test_deprecated_version_cannot_take_a_protected_alias(bot):
    bot.release.protect_alias("bot", "production")
    bot.release.deprecate("bot@2")
    with pytest.raises(PolicyViolation, match="deprecated"):
        bot.release.set_alias("bot", "production", 2)


def test_concurrent_alias_moves_last_writer_wins_and_every_move_is_in_history(bot, db_url, settings_for):
    bot.release.set_alias("bot", "production", 1)
    n, rounds = 4, 3
    barrier = threading.Barrier(n)
    errors: list[BaseException] = []

    def mover(i: int) -> None:
        reg = Registry(settings_for(db_url))  # its own engine and connections
        try:
            barrier.wait()
            for k in range(rounds):
                reg.release.set_alias("bot", "production", 1 + (i + k) % 3, reason=f"t{i}r{k}")
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)
        finally:
            reg.close()

    threads = [threading.Thread(target=mover, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    h = bot.release.alias_history("bot", "production")
    moves = [m for m in h if m.reason and m.reason.startswith("t")]
    # Moves to where it already pointed are no-ops and leave no entry; every real move is there,
    # and each one starts where the previous one ended: no lost update.
    assert 1 <= len(moves) <= n * rounds
    assert _chain_ok(h)
    assert all(m.from_version != m.to_version for m in h)
    assert bot.get("bot@production").version == h[-1].to_version


def _chain_ok(history) -> bool:
    return all(prev.to_version == nxt.from_version for prev, nxt in zip(history, history[1:]))


@pytest.mark.parametrize("locked", [True, False], ids=["with-lock", "unsafe-control"])
def test_the_adapter_lock_is_what_keeps_concurrent_moves_a_chain_on_postgres(locked, migrated_pg_url, settings_for,
                                                                          tiny_llama, adapters):
    """Interleave two moves deterministically: the first holds its transaction open after moving.

    With the lock the second waits and starts from the first's target. The control takes the same
    steps without the lock and must produce the lost update (both moves start from version 1),
    which shows the test can see the failure it guards against.
    """
    import time

    from sqlalchemy import select

    from registry.catalog import models as M
    from registry.release import aliases as A

    setup = Registry(settings_for(migrated_pg_url))
    setup.add_base(tiny_llama, name="llama")
    for a in adapters[:3]:
        setup.push(a, name="bot", base="llama")
    setup.release.set_alias("bot", "production", 1)
    r1, r2 = Registry(settings_for(migrated_pg_url)), Registry(settings_for(migrated_pg_url))
    moved = threading.Event()
    errors: list[BaseException] = []

    def first():
        try:
            with r1.db.write() as s:
                ad = A.lock_adapter(s, "bot")
                A.move(s, ad, "production", A.resolve_target(s, ad, 2), actor="t1", reason=None, force=False)
                moved.set()
                time.sleep(0.5)  # committed only after the second move has started
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    def second():
        try:
            assert moved.wait(10)
            with r2.db.write() as s:
                ad = (A.lock_adapter(s, "bot") if locked
                      else s.scalar(select(M.Adapter).where(M.Adapter.name == "bot")))
                A.move(s, ad, "production", A.resolve_target(s, ad, 3), actor="t2", reason=None, force=False)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert not errors
    h = setup.release.alias_history("bot", "production")
    assert [m.to_version for m in h] == [1, 2, 3] and setup.get("bot@production").version == 3
    assert _chain_ok(h) is locked
    for r in (setup, r1, r2):
        r.close()
