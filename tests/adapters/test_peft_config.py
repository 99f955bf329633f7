import re

import pytest

from registry.adapters.peft_config import parse_config, pattern_value
from registry.errors import InvalidAdapter


def peft_get_pattern_key(pattern_keys, key_to_match):
    """peft 0.21's utils.other.get_pattern_key, for comparison."""
    from peft.utils.other import get_pattern_key

    return get_pattern_key(pattern_keys, key_to_match)


@pytest.mark.parametrize("module", [
    "model.layers.0.self_attn.q_proj", "model.layers.1.mlp.down_proj", "model.layers.10.mlp.up_proj",
    "model.layers.1.self_attn.v_proj", "lm_head",
])
def test_rank_pattern_resolution_matches_peft(module):
    patterns = {"^model.layers.0.self_attn.q_proj": 16, r"layers\.1\.mlp\.down_proj": 2, "up_proj": 8, "v_proj": 32}
    key = peft_get_pattern_key(list(patterns), module)
    expected = patterns.get(key, 4)
    assert pattern_value(patterns, module, 4) == expected


def test_lora_config_gives_typed_fields():
    f = parse_config({"peft_type": "LORA", "r": 8, "lora_alpha": 16, "target_modules": ["v_proj", "q_proj"],
                      "use_dora": True, "use_rslora": True, "modules_to_save": ["lm_head"], "bias": "none",
                      "init_lora_weights": "pissa_niter_4", "rank_pattern": {"q_proj": 4}})
    assert (f.rank, f.alpha, f.target_modules, f.use_dora, f.use_rslora) == (8, 16.0, ["q_proj", "v_proj"], True, True)
    assert f.init_method == "pissa_niter_4" and f.changes_base
    assert f.scaling_for("model.layers.0.self_attn.q_proj") == (4, 16.0)


@pytest.mark.parametrize("init,changes", [(True, False), (False, False), ("gaussian", False), ("olora", True),
                                          ("pissa", True), ("corda", True), ("eva", False)])
def test_base_changing_initialisations_are_flagged(init, changes):
    assert parse_config({"peft_type": "LORA", "r": 4, "init_lora_weights": init}).changes_base is changes


def test_loftq_config_is_flagged_as_base_changing():
    f = parse_config({"peft_type": "LORA", "r": 4, "init_lora_weights": "loftq", "loftq_config": {"loftq_bits": 4}})
    assert f.init_method == "loftq" and f.changes_base


def test_other_peft_types_are_accepted_and_recorded():
    f = parse_config({"peft_type": "IA3", "target_modules": ["k_proj"]})
    assert f.peft_type == "IA3" and not f.is_lora and f.rank is None


@pytest.mark.parametrize("conf,msg", [({}, "no peft_type"), ({"peft_type": "LORA", "r": 0}, "positive"),
                                      ({"peft_type": "LORA", "r": "x"}, "must be numbers")])
def test_bad_configs_are_refused(conf, msg):
    with pytest.raises(InvalidAdapter, match=msg):
        parse_config(conf)


def test_regex_target_modules_are_kept_as_a_regex():
    f = parse_config({"peft_type": "LORA", "r": 4, "target_modules": r".*\.(q|v)_proj"})
    assert f.target_regex and re.fullmatch(f.target_regex, "model.layers.0.self_attn.q_proj")
