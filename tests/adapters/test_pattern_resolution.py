"""The static check and the merge resolve rank_pattern / alpha_pattern with one function, as peft does."""

import pytest

from registry.adapters.peft_config import parse_config, pattern_key
from registry.merge import targets

NAMES = ["model.layers.0.self_attn.q_proj", "model.layers.1.self_attn.q_proj", "model.layers.1.mlp.down_proj",
         "model.layers.10.mlp.up_proj", "model.layers.0.mlp.gate_proj", "lm_head"]
CONF = {"peft_type": "LORA", "r": 8, "lora_alpha": 16,
        "rank_pattern": {"^model.layers.0.self_attn.q_proj": 2, r"layers\.1\.mlp\.down_proj": 4, "up_proj": 6,
                         "proj": 12},
        "alpha_pattern": {r"layers\.1\..*": 3, "q_proj": 5}}


@pytest.mark.parametrize("name", NAMES)
def test_static_check_and_merge_give_each_module_the_rank_and_alpha_peft_gives_it(name):
    from peft.utils.other import get_pattern_key

    rp, ap = CONF["rank_pattern"], CONF["alpha_pattern"]
    peft_r = rp.get(get_pattern_key(rp.keys(), name), CONF["r"])
    peft_alpha = ap.get(get_pattern_key(ap.keys(), name), CONF["lora_alpha"])

    assert parse_config(CONF).scaling_for(name) == (peft_r, peft_alpha)
    assert targets.rank_and_alpha(CONF, name) == (peft_r, peft_alpha)


def test_the_merge_uses_the_adapters_resolver():
    assert targets.pattern_key is pattern_key
