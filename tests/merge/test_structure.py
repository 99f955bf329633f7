"""The fast (checkpoint-key) module tree equals the meta model's, for every family it claims."""

from __future__ import annotations

import pytest

from registry.merge.structure import fast_structure

FAMILIES = {
    "llama": ("LlamaConfig", {}),
    "mistral": ("MistralConfig", {}),
    "qwen2": ("Qwen2Config", {}),
    "qwen3": ("Qwen3Config", {}),
    "gpt2": ("GPT2Config", {"n_embd": 32, "n_layer": 2, "n_head": 2}),
}


def meta_structure(cfg):
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.pytorch_utils import Conv1D

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(cfg)
    kinds = {}
    for name, mod in model.named_modules():
        if isinstance(mod, Conv1D):
            kinds[name] = "conv1d"
        elif type(mod) is torch.nn.Linear:
            kinds[name] = "linear"
        elif type(mod) is torch.nn.Embedding:
            kinds[name] = "embedding"
        elif any(True for _ in mod.parameters(recurse=False)):
            kinds[name] = "other"
    sd = model.state_dict()
    ties = dict(model.all_tied_weights_keys or {})
    shapes = {k: tuple(v.shape) for k, v in sd.items() if k not in ties}
    order = [n for n, _ in model.named_modules()]
    return kinds, ties, shapes, order, list(sd)


@pytest.mark.parametrize("tied", [False, True])
@pytest.mark.parametrize("family", list(FAMILIES))
def test_fast_structure_matches_the_meta_model(family, tied):
    import transformers

    cls, extra = FAMILIES[family]
    small = {} if family == "gpt2" else {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                                         "num_attention_heads": 2, "num_key_value_heads": 1}
    cfg = getattr(transformers, cls)(vocab_size=64, tie_word_embeddings=tied, **small, **extra)
    kinds, ties, shapes, order, state = meta_structure(cfg)
    fast = fast_structure(cfg.to_dict() | {"tie_word_embeddings": tied}, shapes)
    assert fast is not None
    got = {m.name: m.kind for m in fast.modules if m.params}
    assert got == kinds
    assert fast.ties == ties
    assert sorted(fast.state_keys) == sorted(state)
    assert {m.name for m in fast.modules} <= set(order)  # containers included, no invented names
    # modules that can share a tensor come in the meta model's order
    pos = {n: i for i, n in enumerate(order)}
    assert pos[fast.input_embedding] < pos[fast.output_embedding]
    assert [m.name for m in fast.modules][-1] == fast.output_embedding


def test_unknown_family_or_implicit_tie_is_left_to_the_meta_model():
    embed, head = "model.embed_tokens.weight", "lm_head.weight"
    assert fast_structure({"model_type": "gemma3", "tie_word_embeddings": True}, {embed: (4, 2)}) is None
    assert fast_structure({"model_type": "llama"}, {embed: (4, 2), head: (4, 2)}) is None
    assert fast_structure({"model_type": "llama", "tie_word_embeddings": False},
                          {"model.embed_tokens.weight": (4, 2), "visual.proj.weight": (2, 2)}) is None
