"""The streaming engine's merged tensors are torch.equal to peft's merge_and_unload(), case by case."""

from __future__ import annotations

import json

import pytest
import torch

from registry.merge import merge
from registry.testing.tiny import LLAMA_TARGETS
from tests.factories import assert_same_checkpoint, load_weights

DTYPES = ["float32", "float16", "bfloat16"]

CASES = {
    # name: (arch, tied, adapter kwargs)
    "llama_q_k_v_o_gate_up_down": ("llama", False, {}),
    "gpt2_conv1d": ("gpt2", True, {}),
    "embedding": ("llama", False, {"target_modules": ["embed_tokens", "q_proj", "v_proj"]}),
    "rslora": ("llama", False, {"use_rslora": True, "lora_alpha": 16, "r": 8}),
    "rank_and_alpha_patterns": ("llama", False, {
        "rank_pattern": {"^model.layers.0.mlp.up_proj": 2, r"layers\.1\.mlp\.down_proj": 6},
        "alpha_pattern": {"q_proj": 3, "model.layers.1.self_attn.k_proj": 32}}),
    "dora_linear": ("llama", False, {"use_dora": True}),
    "dora_conv1d": ("gpt2", True, {"use_dora": True}),
    "dora_embedding": ("llama", False, {"use_dora": True, "target_modules": ["embed_tokens", "o_proj"]}),
    "modules_to_save_lm_head": ("llama", False, {"modules_to_save": ["lm_head"]}),
    "modules_to_save_lm_head_tied": ("llama", True, {"modules_to_save": ["lm_head"]}),
    "tied_lora_on_lm_head": ("llama", True, {"target_modules": ["q_proj", "lm_head"]}),
    "tied_lora_on_embed_tokens": ("llama", True, {"target_modules": ["embed_tokens", "down_proj"]}),
    "lora_bias": ("gpt2", True, {"lora_bias": True}),
    "bias_all": ("gpt2", True, {"bias": "all"}),
    "trainable_tokens": ("llama", False, {"target_modules": ["q_proj"], "trainable_token_indices": [3, 5, 7]}),
    "trainable_tokens_tied": ("llama", True, {"target_modules": ["q_proj"], "trainable_token_indices": [4, 9]}),
    "layers_to_transform": ("llama", False, {"layers_to_transform": [1]}),
    "exclude_modules": ("llama", False, {"exclude_modules": ["o_proj"]}),
    "regex_target_modules": ("llama", False, {"target_modules": r".*layers\.0.*\.(q_proj|up_proj)"}),
    "all_linear": ("llama", False, {"target_modules": "all-linear"}),
    "bf16_stored_adapter": ("llama", False, {"adapter_dtype": "bfloat16"}),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", list(CASES))
def test_streaming_merge_is_bit_identical_to_peft(case, dtype, bases, adapter, tmp_path):
    arch, tied, kwargs = CASES[case]
    base = bases(arch, dtype, tied)
    ad = adapter(base, **kwargs)
    s = merge(base, ad, tmp_path / "streaming", engine="streaming")
    p = merge(base, ad, tmp_path / "peft", engine="peft")
    assert (s.engine, p.engine) == ("streaming", "peft")
    assert s.dtype == dtype
    assert s.validation["probes"]["passed"]
    assert_same_checkpoint(s.out_dir, p.out_dir)
    merged, original = load_weights(s.out_dir), load_weights(base)
    changed = [k for k in merged if k not in original or not torch.equal(merged[k], original[k].to(merged[k]))]
    assert changed, "the adapter changed nothing: the comparison proves nothing"


def test_sharded_base_merges_bit_identical_and_reshards(bases, adapter, tmp_path):
    base = bases("llama", "bfloat16", sharded=True)
    assert len(list(base.glob("*.safetensors"))) > 1
    ad = adapter(base)
    s = merge(base, ad, tmp_path / "s", engine="streaming", max_shard_size="50KB")
    p = merge(base, ad, tmp_path / "p", engine="peft")
    assert len([f for f in s.files if f.endswith(".safetensors")]) > 2
    assert_same_checkpoint(s.out_dir, p.out_dir)


def test_dtype_argument_casts_before_merging_like_peft(bases, adapter, tmp_path):
    base = bases("llama", "float32")
    ad = adapter(base, target_modules=LLAMA_TARGETS + ["embed_tokens"])
    s = merge(base, ad, tmp_path / "s", engine="streaming", dtype="bfloat16")
    p = merge(base, ad, tmp_path / "p", engine="peft", dtype="bfloat16")
    assert s.dtype == "bfloat16"
    assert_same_checkpoint(s.out_dir, p.out_dir)
    assert json.loads((s.out_dir / "config.json").read_text())["dtype"] == "bfloat16"


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_weights_larger_than_one_merge_block_are_bit_identical_to_peft(arch, dtype, adapter, tmp_path):
    """The element-wise half of the hot path runs in blocks of rows (math.BLOCK elements): weights
    spanning several blocks, with a remainder, in Linear and Conv1D (transposed) layouts."""
    from registry.merge.math import BLOCK
    from registry.testing.tiny import build_gpt2, build_llama

    if arch == "llama":  # q: 384x384 (2 blocks), up: 1000x384 (3), down: 384x1000 (3, rows of 1000)
        base = build_llama(tmp_path / "base", dtype=dtype, hidden_size=384, intermediate_size=1000, num_layers=1)
    else:  # c_attn 384x1152, c_fc 384x1536 (Conv1D: rows are in_features wide after the transpose)
        base = build_gpt2(tmp_path / "base", dtype=dtype, n_embd=384, n_layer=1)
    weights = load_weights(base)
    assert any(t.dim() == 2 and t.numel() > 2 * BLOCK and t.shape[0] % max(1, BLOCK // t.shape[1])
               for t in weights.values())
    ad = adapter(base, target_modules="all-linear")
    s = merge(base, ad, tmp_path / "streaming", engine="streaming")
    p = merge(base, ad, tmp_path / "peft", engine="peft")
    assert s.engine == "streaming"
    assert_same_checkpoint(s.out_dir, p.out_dir)
