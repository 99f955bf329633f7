"""targets.py restates peft's matching; these tests hold it to peft's own functions."""

from __future__ import annotations

import itertools

import pytest

from registry.merge import targets
from tests.factories import assert_lora_target_agrees_with_peft

NAMES = [
    "model.embed_tokens", "model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.k_proj",
    "model.layers.1.self_attn.q_proj", "model.layers.1.mlp.up_proj", "model.layers.1.mlp.down_proj",
    "model.layers.12.mlp.gate_proj", "model.layers.0.mlp", "model.layers.0", "lm_head",
    "transformer.h.0.attn.c_attn", "transformer.h.3.mlp.c_proj", "model.layers.2.block_sparse_moe.experts.1.w1",
    "model.layers.0.self_attn.o_proj", "visual.blocks.0.attn.qkv", "model.norm", "xq_proj",
]
CONFIGS = [
    {"target_modules": ["q_proj", "v_proj"]},
    {"target_modules": ["q_proj", "up_proj"], "layers_to_transform": [1]},
    {"target_modules": ["q_proj", "up_proj"], "layers_to_transform": 0, "layers_pattern": "layers"},
    {"target_modules": ["w1", "c_attn"], "layers_to_transform": [1, 2], "layers_pattern": ["layers", "h"]},
    {"target_modules": r".*layers\.(0|12)\..*(q_proj|gate_proj)"},
    {"target_modules": ["q_proj", "k_proj", "lm_head"], "exclude_modules": ["k_proj"]},
    {"target_modules": ["proj", "q_proj", "mlp"], "exclude_modules": r".*layers\.1\..*"},
    {"target_modules": ["q_proj", "lm_head", "embed_tokens"], "modules_to_save": ["lm_head"]},
    {"target_modules": ["model.layers.0.self_attn.q_proj", "c_proj"]},
    {"target_modules": ["q_proj"], "layers_to_transform": []},
]


@pytest.mark.parametrize("conf", CONFIGS, ids=[str(i) for i in range(len(CONFIGS))])
def test_lora_target_agrees_with_peft_check_target_module_exists(conf):
    assert_lora_target_agrees_with_peft(conf, NAMES)


@pytest.mark.parametrize("keys", [
    ["q_proj"], ["^model.layers.0.mlp.up_proj", "up_proj"], [r"layers\.1\.mlp\.down_proj", "proj"],
    ["model.layers.1.self_attn.q_proj"], ["layers.1", "mlp.*"], ["up"],
])
def test_pattern_key_agrees_with_peft_get_pattern_key(keys):
    from peft.utils.other import get_pattern_key

    for name in NAMES:
        assert targets.pattern_key(keys, name) == get_pattern_key(keys, name)


def test_rank_and_alpha_come_from_the_first_matching_pattern_in_dict_order():
    conf = {"r": 8, "lora_alpha": 16, "rank_pattern": {"up_proj": 2, "^model.layers.1.mlp.up_proj": 4},
            "alpha_pattern": {r"layers\.1\..*": 3}}
    assert targets.rank_and_alpha(conf, "model.layers.1.mlp.up_proj") == (2, 3)
    assert targets.rank_and_alpha(conf, "model.layers.0.mlp.down_proj") == (8, 16)


def test_scaling_is_alpha_over_r_or_over_sqrt_r_with_rslora():
    assert targets.scaling({}, 16, 32) == 2.0
    assert targets.scaling({"use_rslora": True}, 16, 32) == 8.0
    assert isinstance(targets.scaling({}, 3, 8), float)


def test_modules_to_save_match_by_bare_suffix_like_peft():
    assert targets.is_module_to_save(["lm_head"], "lm_head")
    assert targets.is_module_to_save(["head"], "lm_head")  # peft's endswith has no dot boundary
    assert not targets.is_module_to_save(None, "lm_head")


def test_all_linear_excludes_the_output_head():
    assert targets.expand_all_linear(["a.q", "lm_head", "a.k"], "lm_head") == ["a.k", "a.q"]


def test_every_name_config_pair_is_covered():
    assert len(list(itertools.product(NAMES, CONFIGS))) > 150
