"""Promotion gates as pure functions: no database."""

import pytest

from registry.errors import InvalidInput
from registry.release.policy import PolicySpec, VersionFacts, evaluate

SPEC = PolicySpec.parse(require_verified=True, require_metrics=["mmlu>=0.62"])


def test_unprotected_alias_allows_any_version():
    r = evaluate("staging", None, VersionFacts("bot@1", deprecated=True))
    assert r.allowed and not r.protected and r.gates == ()


def test_verified_version_meeting_every_threshold_is_allowed():
    r = evaluate("production", SPEC, VersionFacts("bot@2", "llama@r1", True, {"mmlu": 0.7}))
    assert r.allowed and r.protected and r.violations == ()
    assert [g.kind for g in r.gates] == ["verified", "metric", "not_deprecated"]


def test_every_failing_gate_is_reported_at_once():
    spec = PolicySpec.parse(require_verified=True, require_metrics=["mmlu>=0.62", "acc>0.5"])
    r = evaluate("production", spec, VersionFacts("bot@3", "llama@r1", None, {"mmlu": 0.58}, deprecated=True))
    assert not r.allowed
    assert r.violations == ("bot@3 has no verification against llama@r1", "mmlu is 0.58, needs >= 0.62",
                            "acc has no value (needs > 0.5)", "bot@3 is deprecated")
    assert r.to_dict()["violations"] == list(r.violations)


def test_a_failed_latest_verification_blocks_the_move():
    r = evaluate("production", SPEC, VersionFacts("bot@2", "llama@r1", False, {"mmlu": 0.9}))
    assert r.violations == ("the latest verification of bot@2 against llama@r1 failed",)


def test_a_version_without_base_cannot_satisfy_require_verified():
    r = evaluate("production", PolicySpec(require_verified=True), VersionFacts("bot@1", None, None, {}))
    assert not r.allowed and "no base model recorded" in r.violations[0]


def test_metric_threshold_is_inclusive_for_ge_and_strict_for_gt():
    ge = PolicySpec.parse(require_metrics=["mmlu>=0.62"])
    gt = PolicySpec.parse(require_metrics=["mmlu>0.62"])
    facts = VersionFacts("bot@1", metrics={"mmlu": 0.62})
    assert evaluate("p", ge, facts).allowed
    assert not evaluate("p", gt, facts).allowed


@pytest.mark.parametrize("bad", [["mmlu>>0.6"], ["mmlu"], ["mmlu>=nan"], ["mmlu>=0.5", "mmlu>=0.6"]])
def test_policy_spec_rejects_bad_or_duplicate_metric_requirements(bad):
    with pytest.raises(InvalidInput):
        PolicySpec.parse(require_metrics=bad)
