"""make_plan as a pure function: headers and configs in, ops per stored tensor out (no model)."""

from __future__ import annotations

import pytest

from registry.errors import Incompatible, InvalidAdapter, Unsupported
from registry.merge.plan import make_plan
from registry.merge.structure import fast_structure

P = "base_model.model."
H, V, R = 8, 16, 2


def base(tied=False, vocab=V):
    shapes = {"model.embed_tokens.weight": ("F32", (vocab, H)), "model.norm.weight": ("F32", (H,)),
              "model.layers.0.self_attn.q_proj.weight": ("F32", (H, H)),
              "model.layers.0.mlp.up_proj.weight": ("F32", (2 * H, H))}
    if not tied:
        shapes["lm_head.weight"] = ("F32", (vocab, H))
    structure = fast_structure({"model_type": "llama", "tie_word_embeddings": tied},
                               {k: v[1] for k, v in shapes.items()})
    return shapes, structure


def lora(mod, out_f, in_f, r=R):
    return {f"{P}{mod}.lora_A.weight": ("F32", (r, in_f)), f"{P}{mod}.lora_B.weight": ("F32", (out_f, r))}


def plan(cfg, adapter, tied=False, vocab=V):
    shapes, structure = base(tied, vocab)
    return make_plan({"r": R, "lora_alpha": 4, **cfg}, adapter, shapes, structure, "BF16")


def ops(p):
    return {t.name: [(o.kind, o.module) for o in t.ops] for t in p.tensors}


def test_lora_on_a_tied_head_lands_on_the_embedding_after_its_own_ops():
    ad = {**lora("lm_head", V, H), f"{P}model.embed_tokens.lora_embedding_A": ("F32", (R, V)),
          f"{P}model.embed_tokens.lora_embedding_B": ("F32", (H, R))}
    p = plan({"target_modules": ["embed_tokens", "lm_head"]}, ad, tied=True)
    assert "lm_head.weight" not in ops(p)
    assert ops(p)["model.embed_tokens.weight"] == [("lora_embedding", "model.embed_tokens"), ("lora", "lm_head")]
    assert p.config_updates == {}


def test_modules_to_save_on_a_tied_head_unties_it_into_a_new_tensor():
    p = plan({"target_modules": ["q_proj"], "modules_to_save": ["lm_head"]},
             {**lora("model.layers.0.self_attn.q_proj", H, H), f"{P}lm_head.weight": ("F32", (V, H))}, tied=True)
    head = [t for t in p.tensors if t.name == "lm_head.weight"]
    assert head and head[0].source is None and head[0].ops[0].kind == "replace"
    assert ops(p)["model.embed_tokens.weight"] == []
    assert p.config_updates == {"tie_word_embeddings": False}


def test_scaling_follows_rank_and_alpha_patterns():
    ad = {**lora("model.layers.0.self_attn.q_proj", H, H, r=4), **lora("model.layers.0.mlp.up_proj", 2 * H, H)}
    p = plan({"target_modules": ["q_proj", "up_proj"], "rank_pattern": {"q_proj": 4},
              "alpha_pattern": {"up_proj": 1}, "use_rslora": True}, ad)
    by = {t.name: t.ops[0].scaling for t in p.tensors if t.ops}
    assert by["model.layers.0.self_attn.q_proj.weight"] == 4 / 2.0
    assert by["model.layers.0.mlp.up_proj.weight"] == 1 / 2 ** 0.5


def test_tensors_for_untargeted_modules_are_listed_as_ignored():
    ad = {**lora("model.layers.0.self_attn.q_proj", H, H), **lora("model.layers.0.mlp.up_proj", 2 * H, H)}
    with pytest.raises(Incompatible, match="silently ignore") as e:
        plan({"target_modules": ["q_proj"]}, ad)
    assert e.value.names == sorted(lora("model.layers.0.mlp.up_proj", 2 * H, H))


def test_missing_tensors_of_targeted_modules_are_listed():
    with pytest.raises(Incompatible, match="lacks") as e:
        plan({"target_modules": ["q_proj", "up_proj"]}, lora("model.layers.0.self_attn.q_proj", H, H))
    assert e.value.names == sorted(lora("model.layers.0.mlp.up_proj", 2 * H, H))


def test_a_resized_vocabulary_is_merged_when_every_vocabulary_tensor_comes_with_the_adapter():
    ad = {f"{P}model.embed_tokens.weight": ("F32", (V + 4, H)), f"{P}lm_head.weight": ("F32", (V + 4, H)),
          **lora("model.layers.0.self_attn.q_proj", H, H)}
    p = plan({"target_modules": ["q_proj"]}, ad)
    assert p.config_updates == {"vocab_size": V + 4}
    assert {t.name: t.shape for t in p.tensors}["lm_head.weight"] == (V + 4, H)


def test_a_resized_embedding_without_its_head_is_refused():
    ad = {f"{P}model.embed_tokens.weight": ("F32", (V + 4, H)), **lora("model.layers.0.self_attn.q_proj", H, H)}
    with pytest.raises(Incompatible, match="resized vocabulary"):
        plan({"target_modules": ["q_proj"]}, ad)


def test_targets_matching_nothing_mean_another_base():
    with pytest.raises(Incompatible, match="match no module"):
        plan({"target_modules": ["c_attn"]}, lora("transformer.h.0.attn.c_attn", 3 * H, H))


def test_unknown_or_unreproduced_config_features_are_unsupported():
    with pytest.raises(Unsupported, match="layer_replication"):
        plan({"target_modules": ["q_proj"], "layer_replication": [[0, 1]]}, {})
    with pytest.raises(Unsupported, match="does not know"):
        plan({"target_modules": ["q_proj"], "brand_new_feature": {"x": 1}}, {})
    with pytest.raises(Unsupported, match="init_lora_weights"):
        plan({"target_modules": ["q_proj"], "init_lora_weights": "pissa"}, {})


def test_dora_with_lora_bias_is_an_invalid_adapter():
    with pytest.raises(InvalidAdapter):
        plan({"target_modules": ["q_proj"], "use_dora": True, "lora_bias": True}, {})
