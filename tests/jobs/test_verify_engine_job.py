"""verify --engine is a job kind like any verify: enqueued through the Registry, the Client and the
HTTP API with the engine in its payload, one job per (version, base, dtype, engine)."""

from __future__ import annotations

import pytest

from registry.errors import InvalidInput


def test_an_engine_verify_is_its_own_job_beside_the_peft_one(registry, tiny_llama, tiny_adapter):
    registry.add_base(tiny_llama, name="llama")
    registry.push(tiny_adapter, name="bot", base="llama")
    peft = registry.jobs.verify("bot@1")
    vllm = registry.jobs.verify("bot@1", engine="vllm")
    again = registry.jobs.verify("bot@1", engine="vllm")
    assert peft.id != vllm.id and again.id == vllm.id and not again.created
    assert vllm.payload["engine"] == "vllm" and "engine" not in peft.payload
    with pytest.raises(InvalidInput, match="sglang"):
        registry.jobs.verify("bot@1", engine="sglang")
