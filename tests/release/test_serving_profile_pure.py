"""The vLLM serving profile as pure functions: rank rounding, dtype, exclusions, flags."""

import shlex

import pytest

from registry.errors import InvalidInput
from registry.release.serving import VLLM_MAX_LORA_RANKS, Candidate, build_profile, lora_dtype, vllm_rank
from registry.types import BaseRef

BASE = BaseRef("llama", "r1", "f" * 64)


@pytest.mark.parametrize("rank,expected", [(1, 1), (2, 8), (8, 8), (9, 16), (64, 64), (65, 128), (257, 320),
                                           (300, 320), (321, 512), (512, 512)])
def test_max_lora_rank_rounds_up_to_a_value_vllm_accepts(rank, expected):
    assert vllm_rank(rank) == expected
    assert expected in VLLM_MAX_LORA_RANKS


def test_rank_above_vllms_largest_is_refused():
    with pytest.raises(InvalidInput, match="512"):
        vllm_rank(513)


def test_lora_dtype_is_the_shared_half_dtype_else_auto():
    assert lora_dtype(["bfloat16", "bfloat16"]) == "bfloat16"
    assert lora_dtype(["float16"]) == "float16"
    assert lora_dtype(["float32"]) == "auto"
    assert lora_dtype(["float16", "bfloat16"]) == "auto"


def test_profile_takes_max_rank_over_rank_patterns_and_unions_target_modules():
    cands = [Candidate("b", "b@2", 4, "/c/b", ("q_proj", "v_proj"), {"o_proj": 24}, "bfloat16"),
             Candidate("a", "a@1", 8, "/c/a", ("q_proj", "k_proj"), {}, "bfloat16")]
    p = build_profile(BASE, "/models/llama", "production", cands)
    assert p.max_lora_rank == 32 and p.max_loras == 2 and p.lora_dtype == "bfloat16"
    assert p.target_modules == ("k_proj", "q_proj", "v_proj")
    assert [a.name for a in p.adapters] == ["a", "b"] and p.adapters[1].rank == 24
    assert p.flags == ("--enable-lora", "--max-lora-rank", "32", "--max-loras", "2", "--lora-dtype", "bfloat16",
                       "--lora-modules", "a=/c/a", "b=/c/b")
    assert shlex.split(p.command)[:3] == ["vllm", "serve", "/models/llama"]
    assert p.to_dict()["adapters"][0]["path"] == "/c/a"


def test_dora_modules_to_save_and_non_lora_adapters_are_left_out_with_a_warning():
    cands = [Candidate("ok", "ok@1", 4, "/c/ok"),
             Candidate("dora", "dora@1", 4, "/c/d", use_dora=True),
             Candidate("mts", "mts@1", 4, "/c/m", modules_to_save=("lm_head",)),
             Candidate("ia3", "ia3@1", None, "/c/i", peft_type="IA3")]
    p = build_profile(BASE, "/m", "production", cands)
    assert [a.name for a in p.adapters] == ["ok"]
    assert len([w for w in p.warnings if w.startswith("left out")]) == 3


def test_deprecated_and_other_revision_adapters_are_served_with_warnings():
    p = build_profile(BASE, "/m", "production", [Candidate("a", "a@1", 4, "/c/a", deprecated=True,
                                                           note="registered against llama@r0")])
    assert p.adapters and any("deprecated" in w for w in p.warnings) and any("llama@r0" in w for w in p.warnings)


def test_nothing_servable_is_an_error():
    with pytest.raises(InvalidInput):
        build_profile(BASE, "/m", "production", [Candidate("d", "d@1", 4, "/c", use_dora=True)])
