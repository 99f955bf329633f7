"""The linear-time pattern engine (registry/adapters/patterns.py) against Python's `re`, as peft calls it.

Every pattern here is run both ways on every name: RE2 must give the answer peft's `re` gives,
constructs RE2 lacks must be refused by name, and a crafted key must stay fast.
"""

from __future__ import annotations

import re
import time

import pytest

from registry.adapters import patterns as P
from registry.errors import InvalidInput
from registry.merge import targets
from tests.factories import assert_lora_target_agrees_with_peft

NAMES = [
    "model.embed_tokens", "model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.k_proj",
    "model.layers.1.self_attn.q_proj", "model.layers.1.mlp.up_proj", "model.layers.12.mlp.gate_proj",
    "model.layers.0.mlp", "lm_head", "transformer.h.0.attn.c_attn", "transformer.h.3.mlp.c_proj",
    "model.layers.2.block_sparse_moe.experts.1.w1", "visual.blocks.0.attn.qkv", "model.norm", "xq_proj",
    "q_proj", "Model.Layers.3.Q_Proj", "model.layers.7.self_attn.q_proj.base_layer", "a.b", "", "model.q_proj\n",
    "layersX0Xq_proj", "model.layers.{1}.x", "x.y_z-1",
]
# rank_pattern / alpha_pattern keys of every shape: literals with `.`, anchors, alternation, classes,
# \d, lazy quantifiers, flags, braces, escapes, and a key that breaks out of peft's wrapper group.
KEYS = [
    "q_proj", "model.layers.0.self_attn.q_proj", "layers.0", "^model.layers.0.mlp", r"layers\.1\.mlp\.up_proj",
    r"layers\.\d+\.self_attn\.(q|k)_proj", r"layers\.(0|12)\..*", "mlp.*", r".*\.mlp\..*?proj", "(q|v)_proj",
    r"[qk]_proj", r"[^.]+_proj", r"layers\.[0-9]{1,2}\.mlp", "(?i:Q_PROJ)", r"\w+_proj", r"x?q_proj",
    r"layers\.\d+?\.", r"q_proj\Z", "layers.{1}", r"layers\.{1}\.x", "a{,3}.b", r"proj$", r"^lm_head$", "h.0.attn",
    r"(?:blocks|h)\.\d+\.attn\.\w+", "q_proj)|(lm_head", r"\.", "", r"y_z-\d", "[.]", r"\Aq_proj", r"q_proj\b",
]


@pytest.mark.parametrize("key", KEYS)
def test_a_pattern_key_matches_exactly_the_names_python_re_matches(key):
    for name in NAMES:
        theirs = re.match(rf"(.*\.)?({key})$", name) is not None
        ours = P.pattern_key([key], name) == key and (theirs or name != key)
        assert ours == theirs, (key, name)


def test_pattern_key_picks_the_first_matching_key_in_order_as_peft_get_pattern_key():
    from peft.utils.other import get_pattern_key

    for keys in (KEYS, KEYS[::-1], KEYS[5:] + KEYS[:5]):
        for name in NAMES:
            assert P.pattern_key(keys, name) == get_pattern_key(keys, name), name


@pytest.mark.parametrize("pattern", [
    r".*layers\.(0|12)\..*(q_proj|gate_proj)", r".*\.(q|k)_proj", "lm_head", r"model\.layers\.\d+\..*", r".*?proj",
    r"(?i).*Q_PROJ", r"[a-z.]+", r".*\d.*", r"model\.layers\.1\..*\Z", ".*a{,2}",
])
def test_fullmatch_and_match_agree_with_python_re(pattern):
    for name in NAMES:
        assert P.fullmatch(pattern, name, what="t") == (re.fullmatch(pattern, name) is not None), (pattern, name)
        ours, theirs = P.match(pattern, name, what="t"), re.match(pattern, name)
        assert (ours is None) == (theirs is None), (pattern, name)
        if theirs is not None:
            assert ours.group(0) == theirs.group(0), (pattern, name)


@pytest.mark.parametrize("layers_pattern", ["layers", ["layers", "h"], "h", r"(layers|blocks)", r"\w+?"])
def test_the_layer_index_lazy_capture_agrees_with_peft(layers_pattern):
    for idx in ([0], [1, 2], [3]):
        conf = {"target_modules": ["q_proj", "w1", "c_attn", "c_proj", "qkv"], "layers_to_transform": idx,
                "layers_pattern": layers_pattern}
        assert_lora_target_agrees_with_peft(conf, NAMES)


@pytest.mark.parametrize("conf", [
    {"target_modules": ["q_proj", "lm_head"], "modules_to_save": [r"lm_\w+", "embed_tokens"]},
    {"target_modules": r".*\.(q|k)_proj", "exclude_modules": r".*layers\.1\..*"},
    {"target_modules": ["q_proj"], "modules_to_save": ["layers.0"]},
])
def test_regex_configs_agree_with_peft_check_target_module_exists(conf):
    from peft import LoraConfig
    from peft.tuners.tuners_utils import _ExcludedModule, check_target_module_exists

    peft_conf = LoraConfig(**conf)
    for name in NAMES[:-4]:
        theirs = check_target_module_exists(peft_conf, name)
        theirs = None if isinstance(theirs, _ExcludedModule) else bool(theirs)
        ours = targets.lora_target(conf, name)
        assert (None if ours is None else bool(ours)) == theirs, (name, conf)


@pytest.mark.parametrize(("key", "construct"), [
    (r"(a)\1", "a backreference"), (r"(?P<x>a)(?P=x)", "a backreference"), (r"q(?=_proj)", "a lookaround"),
    (r"(?<!k)_proj", "a lookaround"), (r"(?>a+)", "an atomic group"), (r"a*+", "a possessive quantifier"),
])
def test_a_construct_re2_lacks_is_refused_naming_the_key(key, construct):
    with pytest.raises(InvalidInput) as e:
        P.pattern_key([key], "model.layers.0.self_attn.q_proj")
    assert f"rank_pattern key {key!r} uses {construct}" in str(e.value)
    assert "which the registry does not evaluate" in str(e.value)


@pytest.mark.parametrize("key", ["(x", "q_proj[", "*", "a{2,1}", "(?i)q_proj"])
def test_an_invalid_key_is_invalid_input_naming_it(key):
    with pytest.raises(InvalidInput, match="not a valid regular expression") as e:
        P.check_pattern_keys([key], field="alpha_pattern")
    assert f"alpha_pattern key {key!r}" in str(e.value)


def test_too_many_keys_or_regex_keys_or_a_too_long_key_are_refused():
    with pytest.raises(InvalidInput, match="at most 4096"):
        P.check_pattern_keys([f"layers.{i}.q_proj" for i in range(P.MAX_PATTERN_KEYS + 1)], field="rank_pattern")
    with pytest.raises(InvalidInput, match="regular-expression keys"):
        P.check_pattern_keys([rf"layers\.{i}\.q_proj" for i in range(P.MAX_REGEX_KEYS + 1)], field="rank_pattern")
    with pytest.raises(InvalidInput, match="longer than"):
        P.check_pattern_keys(["a" * (P.MAX_PATTERN_CHARS + 1)], field="rank_pattern")
    P.check_pattern_keys([f"layers.{i}.q_proj" for i in range(P.MAX_PATTERN_KEYS)], field="rank_pattern")


CRAFTED = [r"(\w|\.)*" * 7 + "!", r"([\w.]+)+!", r"(x+x+)+y", r"(a+)+$", r"(.*){1,30}!"]


@pytest.mark.parametrize("key", CRAFTED)
def test_a_crafted_backtracking_key_finishes_in_milliseconds(key):
    # Python's re takes ~1 s (the first) to ages (the others) on each of these names.
    names = ["model.layers.0.self_attn.q_proj", "model.layers.1.mlp.down_proj" + "a" * 40, "x" * 60]
    t = time.perf_counter()
    for _ in range(10):
        for name in names:
            assert P.pattern_key([key], name) == name
    assert time.perf_counter() - t < 0.5


def test_the_config_check_refuses_bad_patterns_in_every_regex_field():
    from registry.adapters.peft_config import parse_config

    base = {"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj"]}
    for extra, named in [
        ({"rank_pattern": {r"(a)\1": 2}}, r"rank_pattern key '(a)\\1' uses a backreference"),
        ({"alpha_pattern": {"(x": 2}}, "alpha_pattern key '(x'"),
        ({"target_modules": r".*(?=q)"}, "target_modules"),
        ({"exclude_modules": "[bad"}, "exclude_modules"),
        ({"layers_pattern": "(?<=x)layers", "layers_to_transform": [0]}, "layers_pattern"),
        ({"modules_to_save": ["lm_head", "(?P<a>x)(?P=a)"]}, "modules_to_save entry"),
    ]:
        with pytest.raises(InvalidInput) as e:
            parse_config({**base, **extra})
        assert named in str(e.value), (extra, str(e.value))
    assert parse_config({**base, "rank_pattern": {r"layers\.\d+\.q_proj": 2}}).rank_pattern
