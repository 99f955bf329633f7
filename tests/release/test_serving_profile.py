"""The serving profile over a real catalog: aliased adapters of one base, resolved to local folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry.errors import InvalidInput


def test_serving_profile_serves_every_adapter_of_the_base_with_the_alias(rel, tiny_llama, adapters, models_dir):
    from registry.testing.tiny import build_adapter

    rel.add_base(tiny_llama, name="llama")
    rel.push(adapters[0], name="bot", base="llama")    # r=4, all seven projections
    rel.push(adapters[2], name="chat", base="llama")   # r=16, q/v/o
    rel.push(adapters[1], name="misc", base="llama")   # staging only: not served
    dora = build_adapter(tiny_llama, models_dir / "rel-dora", r=4, seed=21, use_dora=True)
    rel.push(dora, name="dora", base="llama")
    for name in ("bot", "chat", "dora"):
        rel.release.set_alias(name, "production", 1)
    rel.release.set_alias("misc", "staging", 1)
    rel.release.deprecate("chat@1")

    p = rel.release.serving_profile("llama")
    assert [a.ref for a in p.adapters] == ["bot@1", "chat@1"]
    assert p.max_lora_rank == 16 and p.max_loras == 2 and p.lora_dtype == "auto"
    assert set(p.target_modules) == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert Path(p.base_path) == Path(tiny_llama).resolve()
    for a in p.adapters:
        assert (Path(a.path) / "adapter_config.json").is_file()
        assert f"{a.name}={a.path}" in p.flags
    assert any("DoRA" in w for w in p.warnings) and any("chat@1" in w and "deprecated" in w for w in p.warnings)
    assert p.to_dict()["flags"][:2] == ["--enable-lora", "--max-lora-rank"]
    staging = rel.release.serving_profile("llama", alias="staging")
    assert [a.ref for a in staging.adapters] == ["misc@1"] and staging.max_lora_rank == 8
    with pytest.raises(InvalidInput):
        rel.release.serving_profile("llama", alias="canary")


def test_serving_profile_leaves_out_every_adapter_vllm_refuses_at_start_up(rel, tiny_llama, tiny_adapter, models_dir):
    """PiSSA, trainable-token and bias adapters each stop `vllm serve` (init_static_loras): never emitted."""
    from registry.testing.tiny import build_adapter

    rel.add_base(tiny_llama, name="llama")
    refused = {
        "pissa": dict(init_lora_weights="pissa", target_modules=["q_proj", "v_proj"]),
        "tokens": dict(trainable_token_indices=[5, 6], target_modules=["q_proj"]),
        "bias": dict(bias="all", target_modules=["q_proj"]),
    }
    rel.push(tiny_adapter, name="ok", base="llama")
    rel.release.set_alias("ok", "production", 1)
    for name, kw in refused.items():
        rel.push(build_adapter(tiny_llama, models_dir / f"vllm-refuses-{name}", seed=30, **kw), name=name,
                 base="llama")
        rel.release.set_alias(name, "production", 1)
    p = rel.release.serving_profile("llama")
    assert [a.ref for a in p.adapters] == ["ok@1"]
    assert not any(f"{n}=" in f for f in p.flags for n in refused)
    left_out = [w for w in p.warnings if w.startswith("left out")]
    assert any("pissa@1" in w and "vllm.init" in w for w in left_out)
    assert any("tokens@1" in w and "vllm.trainable_tokens" in w for w in left_out)
    assert any("bias@1" in w and "vllm.bias" in w for w in left_out)


def test_serving_profile_of_a_base_vllm_has_no_lora_support_for_is_refused(rel, tiny_gpt2, models_dir):
    from registry.testing.tiny import build_adapter

    rel.add_base(tiny_gpt2, name="gpt2")
    rel.push(build_adapter(tiny_gpt2, models_dir / "gpt2-lora", seed=3), name="g", base="gpt2")
    rel.release.set_alias("g", "production", 1)
    with pytest.raises(InvalidInput, match="GPT2LMHeadModel"):
        rel.release.serving_profile("gpt2")
