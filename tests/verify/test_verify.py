"""Dynamic verification with real tiny models on CPU, through the job queue."""

from __future__ import annotations

import pytest
import torch

from registry.verify import verify
from registry.verify.cache import ModelCache
from tests.factories import push


@pytest.fixture(scope="module")
def dead_adapter(models_dir, tiny_llama):
    """An adapter whose B matrices are zero: it loads, merges, and changes nothing."""
    from registry.testing.tiny import build_adapter

    return build_adapter(tiny_llama, models_dir / "adapter-dead", r=4, seed=7, scale=0.0)


def test_working_adapter_passes_and_the_verification_is_recorded(registry, tiny_llama, tiny_adapter):
    ref = push(registry, tiny_llama, tiny_adapter)
    job = registry.jobs.verify(ref, inline=True)
    assert job.state == "succeeded", job.error
    assert job.result["passed"] and job.result["reasons"] == []
    f = job.result["figures"]
    assert f["finite"] and f["effect"] > f["min_effect"] and f["merge_rel_diff"] <= f["merge_tolerance"]
    [v] = registry.show(ref).verifications
    assert v.passed and v.device_kind == "cpu" and v.dtype == "float32" and v.versions["peft"]
    assert v.base.name == "tiny" and v.duration_s > 0


def test_adapter_with_no_effect_fails_verification(registry, tiny_llama, dead_adapter):
    ref = push(registry, tiny_llama, dead_adapter, name="dead")
    job = registry.jobs.verify(ref, inline=True)
    assert job.state == "succeeded" and not job.result["passed"]  # the job worked; the adapter did not
    assert "no measurable effect" in job.result["reasons"][0]
    assert not registry.show(ref).verifications[0].passed


def test_statically_incompatible_adapter_fails_without_loading_the_model(sqlite_registry, tiny_llama,
                                                                        tiny_llama_other, tiny_adapter):
    reg = sqlite_registry
    ref = push(reg, tiny_llama, tiny_adapter)
    reg.add_base(tiny_llama_other, name="other")
    job = reg.jobs.verify(ref, base="other", inline=True)
    assert not job.result["passed"] and job.result["figures"]["static"] == "fail"
    assert "effect" not in job.result["figures"]


def test_second_verify_of_the_same_version_while_queued_returns_the_same_job(sqlite_registry, tiny_llama,
                                                                            tiny_adapter):
    ref = push(sqlite_registry, tiny_llama, tiny_adapter)
    a = sqlite_registry.jobs.verify(ref, dtype="bf16")
    b = sqlite_registry.jobs.verify(ref.split("@")[0], dtype="bfloat16")  # latest = the same version
    assert a.created and not b.created and a.id == b.id


def test_cache_loads_the_base_once_for_many_adapters_and_leaves_it_unchanged(tiny_llama, tiny_adapter,
                                                                             tiny_adapter2, dead_adapter):
    from transformers import AutoModelForCausalLM

    cache = ModelCache(device="cpu")
    outcomes = [verify(tiny_llama, a, cache=cache, base_key="fp", adapter_key=a.name, dtype="float32")
                for a in (tiny_adapter, tiny_adapter2, dead_adapter, tiny_adapter)]
    assert [o.passed for o in outcomes] == [True, True, False, True]
    assert outcomes[0].figures == outcomes[3].figures  # same adapter, same cached base: same numbers
    assert (cache.misses, cache.hits) == (1, 3)
    resident = cache._entries[("fp", "float32")]
    assert resident.peft.peft_config == {}  # every adapter was removed again
    fresh = dict(AutoModelForCausalLM.from_pretrained(tiny_llama).named_parameters())
    for name, p in resident.model.named_parameters():
        key = name.replace(".base_layer", "")
        if key in fresh:
            assert torch.equal(p, fresh[key]), f"{name} drifted"


def test_cache_evicts_the_least_recently_used_base_when_over_budget(tiny_llama, tiny_llama_other, tiny_adapter):
    from registry.testing.tiny import build_adapter

    other_adapter = build_adapter(tiny_llama_other, tiny_llama_other.parent / "adapter-other", r=2, seed=3)
    cache = ModelCache(device="cpu", max_bytes=1)  # room for one model at a time
    verify(tiny_llama, tiny_adapter, cache=cache, base_key="a", adapter_key="x", dtype="float32")
    verify(tiny_llama_other, other_adapter, cache=cache, base_key="b", adapter_key="y", dtype="float32")
    assert cache.evictions == 1 and [k[0] for k in cache._entries] == ["b"]
