"""What "verified" means once engines verify too: peft unless an engine is asked for; policy gates per engine."""

from __future__ import annotations

import pytest

from registry import gates
from registry.errors import InvalidInput
from registry.release.policy import PolicySpec, VersionFacts, evaluate
from registry.workflows.verify import Result


def _record(reg, ref, *, passed, engine="peft", dtype="float32"):
    from registry.catalog import queries as Q
    from registry.refs import parse_ref

    with reg.core.db.write() as s:
        _a, row = Q.get_version(s, parse_ref(ref))
        versions = {} if engine == "peft" else {"engine": engine, "engine_version": "0.32.0"}
        Result(ref, row.id, row.base_model_id, passed, (), "cpu", dtype, {}, 0.1, versions, engine).record(s)
        return row.id, row.base_model_id


def test_an_engine_verification_neither_counts_as_nor_overrides_peft(registry, tiny_llama, tiny_adapter):
    registry.add_base(tiny_llama, name="llama")
    registry.push(tiny_adapter, name="bot", base="llama")
    vid, bid = _record(registry, "bot@1", passed=True)
    _record(registry, "bot@1", passed=False, engine="vllm")  # newer, on vLLM
    with registry.core.db.read() as s:
        assert gates.verdict(s, vid, bid).verified is True
        assert gates.latest_verdicts(s, [vid])[vid][bid] is True
        assert gates.verdict(s, vid, bid, engine="vllm").verified is False
        assert gates.verdict(s, vid, bid, engine="llama.cpp").verified is None
        assert gates.engine_verdicts(s, vid, bid, ["vllm", "llama.cpp"]) == {"vllm": False, "llama.cpp": None}
    _record(registry, "bot@1", passed=True, engine="vllm")
    with registry.core.db.read() as s:
        assert gates.verdict(s, vid, bid, engine="vllm").passed


def test_an_engine_only_verification_does_not_make_a_version_verified(registry, tiny_llama, tiny_adapter):
    registry.add_base(tiny_llama, name="llama")
    registry.push(tiny_adapter, name="bot", base="llama")
    vid, bid = _record(registry, "bot@1", passed=True, engine="llama.cpp")
    with registry.core.db.read() as s:
        assert gates.verdict(s, vid, bid).verified is None and gates.latest_verdicts(s, [vid]) == {}


def test_require_verified_vllm_is_a_gate_of_its_own():
    spec = PolicySpec.parse(require_verified_engines=["vllm"])
    assert spec.require_verified_engines == ("vllm",) and not spec.require_verified
    ok = evaluate("production", spec, VersionFacts("bot@2", "llama@r1", True, engine_verified={"vllm": True}))
    assert ok.allowed and [(g.kind, g.expr) for g in ok.gates] == [
        ("verified", "verified on vllm against llama@r1"), ("not_deprecated", "not deprecated")]
    no = evaluate("production", spec, VersionFacts("bot@2", "llama@r1", True, engine_verified={}))
    assert not no.allowed and "has no verification against llama@r1 on vllm" in no.gates[0].detail
    failed = evaluate("production", spec, VersionFacts("bot@2", "llama@r1", True, engine_verified={"vllm": False}))
    assert "latest verification of bot@2 against llama@r1 on vllm failed" in failed.gates[0].detail
    assert PolicySpec.parse(require_verified_engines=["peft"]).require_verified


def test_an_unknown_engine_in_a_policy_is_refused():
    with pytest.raises(InvalidInput, match="unknown engine 'tgi'"):
        PolicySpec.parse(require_verified_engines=["tgi"])
