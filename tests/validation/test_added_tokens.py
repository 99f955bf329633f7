"""The added-tokens recipe (special tokens + resize_token_embeddings + LoRA with modules_to_save on
embed_tokens and lm_head, saved by peft) registers against the resized base, resolves, and merges
equal to peft's merge_and_unload; against the original base the error names the base to register."""

from __future__ import annotations

import pytest

from registry.errors import AdapterValidationFailed
from registry.merge import merge
from registry.testing.tiny import build_added_tokens, build_llama
from tests.factories import assert_same_checkpoint, load_weights


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    root = tmp_path_factory.mktemp("added-tokens")
    base = build_llama(root / "base")
    resized, adapter = build_added_tokens(base, root / "resized", root / "adapter")
    return base, resized, adapter


def test_peft_writes_the_wrapper_copies_the_recipe_is_about(recipe):
    from safetensors import safe_open

    _base, _resized, adapter = recipe
    with safe_open(adapter / "adapter_model.safetensors", "pt") as f:
        keys = set(f.keys())
    assert "base_model.model.lm_head.modules_to_save.weight" in keys
    assert "base_model.model.model.embed_tokens.original_module.weight" in keys


def test_added_tokens_adapter_registers_against_the_resized_base_and_resolves(recipe, sqlite_registry):
    _base, resized, adapter = recipe
    sqlite_registry.add_base(resized, name="tiny-resized")
    v = sqlite_registry.push(adapter, name="tools", base="tiny-resized")
    assert v.created and v.compat_status in ("ok", "warn")
    folder = sqlite_registry.resolve("tools")
    assert (folder / "adapter_model.safetensors").read_bytes() == (adapter / "adapter_model.safetensors").read_bytes()


def test_added_tokens_adapter_merges_equal_to_peft_merge_and_unload(recipe, tmp_path):
    _base, resized, adapter = recipe
    s = merge(resized, adapter, tmp_path / "streaming", engine="streaming")
    p = merge(resized, adapter, tmp_path / "peft", engine="peft")
    assert_same_checkpoint(s.out_dir, p.out_dir)
    merged, original = load_weights(s.out_dir), load_weights(resized)
    assert not (merged["lm_head.weight"] == original["lm_head.weight"]).all()  # the copy replaced it


def test_added_tokens_adapter_against_the_original_base_names_the_base_to_register(recipe, sqlite_registry):
    base, _resized, adapter = recipe
    sqlite_registry.add_base(base, name="tiny")
    with pytest.raises(AdapterValidationFailed, match=r"resized to 262 tokens") as e:
        sqlite_registry.push(adapter, name="tools", base="tiny")
    assert "BASE_VOCAB_RESIZED" in e.value.codes and "base add" in (e.value.hint or "")
    assert not sqlite_registry.search(name="tools").items  # nothing registered, the name free


def test_lora_on_embed_tokens_with_a_resized_vocab_against_the_original_base_names_the_resized_base(
        recipe, sqlite_registry, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base, resized, _adapter = recipe
    model = AutoModelForCausalLM.from_pretrained(resized)
    pm = get_peft_model(model, LoraConfig(r=2, lora_alpha=4, target_modules=["embed_tokens", "q_proj"],
                                          init_lora_weights=False))
    pm.save_pretrained(tmp_path / "emb")
    sqlite_registry.add_base(base, name="tiny")
    with pytest.raises(AdapterValidationFailed, match=r"embed_tokens.*262 tokens.*has 260") as e:
        sqlite_registry.push(tmp_path / "emb", name="emb", base="tiny")
    assert e.value.codes[0] == "BASE_VOCAB_RESIZED" and "resized" in e.value.hint
    # against the resized base it fits
    sqlite_registry.add_base(resized, name="tiny-resized")
    assert sqlite_registry.push(tmp_path / "emb", name="emb", base="tiny-resized").created
