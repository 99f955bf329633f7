"""Static compatibility against real tiny bases and adapters (no weights loaded into a model)."""

import json
import shutil

import pytest

from registry.adapters.basemodel import fingerprint_base
from registry.adapters.compat import check_compat
from registry.adapters.inspect import inspect_adapter


def report(adapter_dir, base_dir):
    m = inspect_adapter(adapter_dir)
    fp = fingerprint_base(base_dir)
    return check_compat(m.fields, m.header.tensors, fp.layout, base_config=fp.config, tied=fp.tie_word_embeddings,
                        zero_b=m.zero_b)


def test_llama_adapter_fits_its_base(tiny_adapter, tiny_llama):
    r = report(tiny_adapter, tiny_llama)
    assert r["status"] == "ok" and r["modules_touched"] == 14 and r["ranks"] == [4]


def test_gpt2_conv1d_adapter_fits_with_fan_in_fan_out(gpt2_adapter, tiny_gpt2):
    r = report(gpt2_adapter, tiny_gpt2)
    assert r["status"] == "ok" and r["modules_touched"] == 8  # c_attn, attn.c_proj, c_fc, mlp.c_proj x 2 layers


def test_adapter_for_another_base_is_a_shape_mismatch(tiny_adapter, tiny_llama_other):
    r = report(tiny_adapter, tiny_llama_other)
    assert r["status"] == "fail" and any("shape mismatch" in e for e in r["errors"])


def test_llama_adapter_on_gpt2_names_missing_modules(tiny_adapter, tiny_gpt2):
    r = report(tiny_adapter, tiny_gpt2)
    assert r["status"] == "fail" and any("no such module" in e for e in r["errors"])


def test_all_zero_b_loads_but_does_nothing(tiny_llama, tmp_path):
    from registry.testing.tiny import build_adapter

    d = build_adapter(tiny_llama, tmp_path / "zero", scale=0.0)
    r = report(d, tiny_llama)
    assert r["status"] == "warn" and any("does nothing" in w for w in r["warnings"])


@pytest.mark.parametrize("init", ["pissa", "olora", "corda"])
def test_base_changing_initialisation_is_flagged(tiny_adapter, tiny_llama, tmp_path, init):
    d = shutil.copytree(tiny_adapter, tmp_path / init)
    cfg = json.loads((d / "adapter_config.json").read_text())
    cfg["init_lora_weights"] = init
    (d / "adapter_config.json").write_text(json.dumps(cfg))
    r = report(d, tiny_llama)
    assert r["status"] == "warn" and any("modified the base weights" in w for w in r["warnings"])


def test_rank_pattern_inconsistent_with_the_file_is_an_error(tiny_adapter, tiny_llama, tmp_path):
    d = shutil.copytree(tiny_adapter, tmp_path / "rp")
    cfg = json.loads((d / "adapter_config.json").read_text())
    cfg["rank_pattern"] = {"q_proj": 16}
    (d / "adapter_config.json").write_text(json.dumps(cfg))
    r = report(d, tiny_llama)
    assert r["status"] == "fail" and any("config resolves r=16" in e for e in r["errors"])


def test_lora_on_a_tied_head_and_a_resized_vocabulary_are_flagged(tiny_llama, tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from registry.testing.tiny import build_llama

    tied = build_llama(tmp_path / "tied", tie_word_embeddings=True)
    model = AutoModelForCausalLM.from_pretrained(tied)
    grown = model.config.vocab_size + 4
    model.resize_token_embeddings(grown)
    pm = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj", "embed_tokens"], init_lora_weights=False))
    pm.save_pretrained(tmp_path / "resized", save_embedding_layers=True)
    r = report(tmp_path / "resized", tied)
    assert any("vocabulary resized" in w for w in r["warnings"]) or any(str(grown) in e for e in r["errors"])
    assert any("tied embedding" in w for w in r["warnings"])
    del torch
