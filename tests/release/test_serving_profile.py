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
