"""The table of tensors each architecture needs (registry/adapters/validate/archs.py) is the
architecture itself: the model class built on the meta device from a config has exactly them."""

from __future__ import annotations

import pytest

from registry.adapters.validate.archs import ARCHS, OPTIONAL_SUFFIXES, expected_tensors

CONFIGS = {
    "llama": "LlamaConfig", "mistral": "MistralConfig", "gemma": "GemmaConfig", "qwen2": "Qwen2Config",
    "qwen3": "Qwen3Config", "gpt2": "GPT2Config",
}


def _meta_state(model_type: str, tied: bool):
    import torch
    import transformers
    from transformers import AutoModelForCausalLM

    cfg = getattr(transformers, CONFIGS[model_type])(
        num_hidden_layers=3, n_layer=3, vocab_size=128, hidden_size=32, n_embd=32, intermediate_size=64,
        num_attention_heads=4, n_head=4, num_key_value_heads=2, head_dim=8, tie_word_embeddings=tied,
        pad_token_id=0, bos_token_id=1, eos_token_id=2)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(cfg)
    state = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    if tied:  # tied parameters are saved once, under the input embedding's name
        state.pop("lm_head.weight", None)
    return cfg.to_dict(), state


def test_the_table_covers_every_architecture_the_test_builds():
    assert set(CONFIGS) == set(ARCHS)


@pytest.mark.parametrize("tied", [False, True], ids=["untied", "tied"])
@pytest.mark.parametrize("model_type", sorted(ARCHS))
def test_expected_tensors_are_those_of_the_model_built_on_the_meta_device(model_type, tied):
    config, state = _meta_state(model_type, tied)
    want = expected_tensors(config)
    assert want is not None
    optional = {k for k in state if k.endswith(OPTIONAL_SUFFIXES) and k not in want}
    assert set(want) == set(state) - optional
    for k, shape in want.items():
        if shape is not None:
            assert state[k] == shape, k


def test_an_architecture_outside_the_table_gets_no_missing_tensor_check():
    assert expected_tensors({"model_type": "no-such-arch", "num_hidden_layers": 2}) is None
