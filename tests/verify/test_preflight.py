"""Per-engine preflight rules (registry/engines/preflight/): pure, each rule cites the engine's source."""

from __future__ import annotations

import pytest

from registry.engines import preflight as P
from registry.engines.preflight import llama_cpp, lorax, sglang, tgi, vllm
from registry.engines.versions import PINS

LORA = {"peft_type": "LORA", "r": 8, "lora_alpha": 16, "target_modules": ["q_proj", "v_proj"], "bias": "none"}


def facts(arch="LlamaForCausalLM", tied=False, names=(), **conf):
    return P.Facts({**LORA, **conf}, architecture=arch, tie_word_embeddings=tied, tensor_names=tuple(names))


def test_a_plain_lora_on_llama_passes_every_engine():
    assert [(c.engine, c.ok, c.reasons) for c in P.check_all(facts())] == [
        ("vllm", True, ()), ("llama.cpp", True, ()), ("sglang", True, ()), ("tgi", True, ()), ("lorax", True, ())]


@pytest.mark.parametrize("conf,rule", [
    (dict(use_dora=True), "vllm.dora"),
    (dict(modules_to_save=["lm_head"]), "vllm.modules_to_save"),
    (dict(lora_bias=True), "vllm.lora_bias"),
    (dict(bias="all"), "vllm.bias"),
    (dict(bias="lora_only"), "vllm.bias"),
    (dict(init_lora_weights="pissa"), "vllm.init"),
    (dict(init_lora_weights="olora"), "vllm.init"),
    (dict(init_lora_weights="corda"), "vllm.init"),
    (dict(init_lora_weights="loftq", loftq_config={"loftq_bits": 4}), "vllm.init"),
    (dict(trainable_token_indices=[3, 4]), "vllm.trainable_tokens"),
    (dict(layer_replication=[[0, 2]]), "vllm.feature"),
    (dict(r=1024), "vllm.rank"),
    (dict(rank_pattern={"q_proj": 1024}), "vllm.rank"),
    (dict(peft_type="IA3"), "vllm.peft_type"),
])
def test_vllm_refuses_what_its_peft_helper_refuses(conf, rule):
    c = vllm.check(facts(**conf))
    assert not c.ok and rule in P.failed_rules(c) and c.fix


@pytest.mark.parametrize("conf", [dict(init_lora_weights="gaussian"), dict(init_lora_weights="eva"),
                                  dict(use_rslora=True), dict(rank_pattern={"q_proj": 16}, alpha_pattern={"v": 3.0}),
                                  dict(modules_to_save=["score"]), dict(r=512)])
def test_vllm_takes_what_it_supports(conf):
    assert vllm.check(facts(**conf)).ok


def test_gpt2_has_no_lora_support_in_vllm_but_converts_for_llama_cpp():
    assert P.failed_rules(vllm.check(facts("GPT2LMHeadModel"))) == {"vllm.architecture"}
    assert llama_cpp.check(facts("GPT2LMHeadModel")).ok
    assert "vllm.architecture" not in P.failed_rules(vllm.check(facts(None)))  # unknown base: not judged


def test_vllm_tensor_names_outside_the_models_modules_are_flagged():
    good = ["base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"]
    bad = ["base_model.model.layers.0.self_attn.q_proj.lora_A.weight"]
    assert vllm.check(facts(names=good)).ok
    assert P.failed_rules(vllm.check(facts(names=bad))) == {"vllm.tensor_prefix"}


@pytest.mark.parametrize("conf,rule", [
    (dict(use_rslora=True), "llama.cpp.rslora"),
    (dict(alpha_pattern={"q_proj": 32.0}), "llama.cpp.alpha_pattern"),
    (dict(use_dora=True), "llama.cpp.dora"),
    (dict(modules_to_save=["embed_tokens"]), "llama.cpp.full_weights"),
    (dict(bias="all"), "llama.cpp.full_weights"),
    (dict(init_lora_weights="pissa"), "llama.cpp.init"),
    (dict(trainable_token_indices=[1]), "llama.cpp.trainable_tokens"),
])
def test_llama_cpp_refuses_what_its_converter_cannot_express(conf, rule):
    c = llama_cpp.check(facts(**conf))
    assert not c.ok and rule in P.failed_rules(c)


def test_llama_cpp_rank_pattern_alone_is_expressible_it_scales_by_each_pairs_rank():
    assert llama_cpp.check(facts(rank_pattern={"q_proj": 4})).ok


def test_llama_cpp_lm_head_on_a_tied_base_is_refused():
    assert P.failed_rules(llama_cpp.check(facts(tied=True, target_modules=["lm_head"]))) == {"llama.cpp.tied_lm_head"}
    assert llama_cpp.check(facts(tied=False, target_modules=["lm_head"])).ok


def test_llama_cpp_merged_export_only_needs_a_converted_architecture():
    assert llama_cpp.check(facts(use_rslora=True, use_dora=True), merged=True).ok
    assert not llama_cpp.check(facts("NoSuchForCausalLM"), merged=True).ok


def test_every_rule_cites_a_source_file_at_the_pinned_version():
    rules = P.all_rules()
    assert len({r.id for r in rules}) == len(rules)
    for r in rules:
        pin = PINS[r.engine]
        assert pin.version in r.source and (".py" in r.source or ".h" in r.source), r


def test_architecture_lists_are_the_engines_own():
    assert {"LlamaForCausalLM", "Qwen2ForCausalLM", "MistralForCausalLM"} <= vllm.lora_architectures()
    assert "GPT2LMHeadModel" not in vllm.lora_architectures()
    assert {"LlamaForCausalLM", "GPT2LMHeadModel"} <= llama_cpp.architectures()


def test_show_json_lists_engines(registry, tiny_llama, tiny_adapter, models_dir):
    from registry.testing.tiny import build_adapter

    registry.add_base(tiny_llama, name="llama")
    registry.push(tiny_adapter, name="ok", base="llama")
    rs = build_adapter(tiny_llama, models_dir / "preflight-rslora", seed=7, use_rslora=True, target_modules=["q_proj"])
    registry.push(rs, name="rs", base="llama")
    ok = registry.show("ok@1").to_dict()["engines"]
    assert ok == [{"engine": e, "version": v, "ok": True, "reasons": [], "fix": None}
                  for e, v in [("vllm", "0.32.0"), ("llama.cpp", "0.3.36"), ("sglang", "0.5.3"), ("tgi", "3.3.6"),
                               ("lorax", "0.12.1")]]
    rs_engines = {e["engine"]: e for e in registry.show("rs@1").to_dict()["engines"]}
    assert rs_engines["vllm"]["ok"] and rs_engines["tgi"]["ok"] and not rs_engines["llama.cpp"]["ok"]
    assert rs_engines["sglang"]["reasons"][0].startswith("sglang.rslora:")
    lc = rs_engines["llama.cpp"]
    assert lc["reasons"][0].startswith("llama.cpp.rslora:") and "merged" in lc["fix"]


def test_every_rule_is_documented_with_its_source():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "ENGINES.md").read_text()
    for r in P.all_rules():
        assert f"`{r.id}`" in doc and r.source in doc, f"{r.id} is not in docs/ENGINES.md with its source"


@pytest.mark.parametrize("conf,rule", [
    (dict(peft_type="IA3"), "sglang.peft_type"),
    (dict(target_modules=["q_proj", "lm_head"]), "sglang.embeddings"),
    (dict(target_modules=["embed_tokens"]), "sglang.embeddings"),
    (dict(target_modules=["c_attn"]), "sglang.target_modules"),
    (dict(target_modules=r".*\.q_proj"), "sglang.target_regex"),
    (dict(use_rslora=True), "sglang.rslora"),
    (dict(alpha_pattern={"q_proj": 32.0}), "sglang.alpha_pattern"),
    (dict(rank_pattern={"q_proj": 4}), "sglang.rank_pattern"),
    (dict(use_dora=True), "sglang.dora"),
    (dict(lora_bias=True), "sglang.bias"),
    (dict(bias="all"), "sglang.bias"),
    (dict(modules_to_save=["lm_head"]), "sglang.full_weights"),
    (dict(trainable_token_indices=[3]), "sglang.full_weights"),
    (dict(init_lora_weights="pissa"), "sglang.init"),
])
def test_sglang_refuses_or_misserves_what_its_lora_config_does_not_read(conf, rule):
    c = sglang.check(facts(**conf))
    assert not c.ok and rule in P.failed_rules(c) and c.fix


def test_sglang_takes_the_modules_it_stacks_and_a_pattern_equal_to_r():
    assert sglang.check(facts(target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                              "down_proj"], rank_pattern={"q_proj": 8})).ok


@pytest.mark.parametrize("mod", [tgi, lorax])
@pytest.mark.parametrize("conf,rule", [
    (dict(peft_type="IA3"), "peft_type"),
    (dict(target_modules=["embed_tokens"]), "target_modules"),
    (dict(layers_to_transform=[0]), "partial_layers"),
    (dict(rank_pattern={"q_proj": 4}), "rank_pattern"),
    (dict(alpha_pattern={"q_proj": 2.0}), "rank_pattern"),
    (dict(use_dora=True), "dora"),
    (dict(modules_to_save=["lm_head"]), "full_weights"),
    (dict(bias="lora_only"), "full_weights"),
    (dict(init_lora_weights="olora"), "init"),
])
def test_tgi_and_lorax_do_not_apply_what_map_weights_for_model_does_not_take(mod, conf, rule):
    c = mod.check(facts(**conf))
    assert not c.ok and f"{mod.PIN.engine}.{rule}" in P.failed_rules(c) and c.fix


def test_tgi_and_lorax_apply_rslora_and_lorax_has_an_lm_head_layer_for_llama_only():
    assert tgi.check(facts(use_rslora=True)).ok and lorax.check(facts(use_rslora=True)).ok
    head = dict(target_modules=["q_proj", "lm_head"])
    assert lorax.check(facts(**head)).ok
    assert P.failed_rules(tgi.check(facts(**head))) == {"tgi.target_modules"}
    assert P.failed_rules(lorax.check(facts("GemmaForCausalLM", **head))) == {"lorax.target_modules"}
    assert lorax.check(facts("NoSuchForCausalLM", **head)).ok  # not judged where LoRAX's layers are unknown
    bad = ["model.layers.0.self_attn.q_proj.lora_A.weight"]
    assert P.failed_rules(tgi.check(facts(names=bad))) == {"tgi.tensor_prefix"}
