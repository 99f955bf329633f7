"""One answer to "is this version verified?" (registry/gates.py): alias gates, the publish
pre-check (what the API answers) and the publish job itself agree, in every case that used to
get three different answers."""

from __future__ import annotations

import pytest

from registry.errors import PolicyViolation
from tests.factories import add_verification as record


@pytest.fixture
def bot(sqlite_registry, tiny_llama, tiny_adapter):
    reg = sqlite_registry
    reg.add_base(tiny_llama, name="tiny", revision="r1")
    reg.push(tiny_adapter, name="bot", base="tiny")
    return reg


def _publish(reg, tmp_path, **kw):
    return reg.jobs.publish("bot@1", to=f"dir://{tmp_path / 'out'}", inline=True, **kw)


def test_a_failure_after_a_pass_blocks_the_alias_gate_and_publish_alike(bot, tmp_path):
    """The job used to accept any passing verification while the gate read the latest one."""
    record(bot, "bot@1", passed=True, dtype="float32")
    record(bot, "bot@1", passed=False, dtype="float32")
    bot.release.protect_alias("bot", "production", require_verified=True)
    assert not bot.release.check_promotion("bot", "production", 1).allowed
    with pytest.raises(PolicyViolation, match="latest verification of bot@1 against tiny@r1 in float32 failed"):
        _publish(bot, tmp_path)


def test_a_verification_in_another_dtype_does_not_let_publish_through(bot, tmp_path):
    """The API used to accept a publish on the strength of a merge validated in any dtype, which
    its own job then refused; now both refuse, and both accept once that dtype is verified."""
    bot.merge("bot@1", dtype="bf16", validate=True)  # recorded as a bfloat16 verification
    [v] = bot.show("bot@1").verifications
    assert v.passed and v.dtype == "bfloat16" and v.figures["source"] == "merge-validation"
    with pytest.raises(PolicyViolation, match="no verification against tiny@r1 in float32"):
        _publish(bot, tmp_path)  # the base's dtype is float32
    assert bot.jobs.list(kind="publish") == []  # refused before anything was queued
    job = _publish(bot, tmp_path, dtype="bf16")
    assert job.state == "succeeded", job.error
    assert job.result["verified_by"] == "verification:1" and not job.result["forced"]
    assert (tmp_path / "out" / "manifest.json").is_file()


def test_the_alias_gate_takes_any_dtype_but_the_newest_verification(bot):
    bot.release.protect_alias("bot", "production", require_verified=True)
    record(bot, "bot@1", passed=True, dtype="bfloat16")
    assert bot.release.set_alias("bot", "production", 1).to_version == 1


def test_forced_publish_of_an_unverified_version_is_recorded_as_forced(bot, tmp_path):
    job = _publish(bot, tmp_path, force=True)
    assert job.state == "succeeded", job.error
    assert job.result["forced"] and job.result["verified_by"] is None
    [p] = bot.show("bot@1").publications
    assert p.forced


def test_verify_in_process_records_what_the_job_records(bot):
    v = bot.verify("bot@1")
    assert v.passed and v.dtype == "float32" and v.device_kind == "cpu" and v.versions["peft"]
    job = bot.jobs.verify("bot@1", inline=True)
    assert job.state == "succeeded" and job.result["passed"]
    a, b = bot.show("bot@1").verifications  # newest first
    assert (a.passed, a.dtype, sorted(a.figures)) == (b.passed, b.dtype, sorted(b.figures))


def test_the_job_asks_the_gate_again_and_refuses_before_merging(bot, tmp_path):
    """A verification that fails after the publish was queued stops the job, and nothing is merged."""
    record(bot, "bot@1", passed=True, dtype="float32")
    job = bot.jobs.publish("bot@1", to=f"dir://{tmp_path / 'out'}")
    assert job.state == "queued"
    record(bot, "bot@1", passed=False, dtype="float32")
    done = bot.jobs.run(job.id)
    assert done.state == "failed" and "latest verification of bot@1" in done.error
    assert bot.merged("bot@1") == [] and not (tmp_path / "out").exists()
