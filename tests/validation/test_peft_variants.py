"""No valid adapter saved by peft (0.21) is refused: each variant built with real peft on a tiny model
and pushed against that model, with random (non-zero) weights so that nothing is trivially empty."""

from __future__ import annotations

import pytest

from registry.testing.tiny import build_adapter, build_gpt2, build_llama

LORA = {
    "lora": {},
    "dora": {"use_dora": True},
    "rslora": {"use_rslora": True, "lora_alpha": 16, "r": 8},
    "rank_alpha_patterns": {"rank_pattern": {"^model.layers.0.mlp.up_proj": 2}, "alpha_pattern": {"q_proj": 3}},
    "modules_to_save": {"modules_to_save": ["lm_head"]},
    "trainable_tokens": {"target_modules": ["q_proj"], "trainable_token_indices": [3, 5, 7]},
    "layers_to_transform": {"layers_to_transform": [1]},
    "bias_all": {"bias": "all"},
    "bias_lora_only": {"bias": "lora_only"},
    "embedding": {"target_modules": ["embed_tokens", "q_proj"]},
    "regex_targets": {"target_modules": r".*layers\.0.*\.(q_proj|up_proj)"},
    "all_linear": {"target_modules": "all-linear"},
    "bf16_weights": {"adapter_dtype": "bfloat16"},
}


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    root = tmp_path_factory.mktemp("variants")
    return {"llama": build_llama(root / "llama"), "gpt2": build_gpt2(root / "gpt2")}


@pytest.mark.parametrize("case", sorted(LORA))
def test_every_lora_variant_peft_saves_is_registered(case, bases, sqlite_registry, tmp_path):
    base = bases["llama"]
    ad = build_adapter(base, tmp_path / case, **LORA[case])
    sqlite_registry.add_base(base, name="tiny")
    v = sqlite_registry.push(ad, name=f"v-{case.replace('_', '-')}", base="tiny")
    assert v.created and v.compat_status in ("ok", "warn"), v.compat


@pytest.mark.parametrize("kwargs", [{"use_dora": True}, {"lora_bias": True}], ids=["dora", "lora_bias"])
def test_gpt2_conv1d_dora_and_lora_bias_adapters_are_registered(kwargs, bases, sqlite_registry, tmp_path):
    # lora_bias needs base layers with a bias (peft itself cannot merge it into Llama's bias-less ones)
    ad = build_adapter(bases["gpt2"], tmp_path / "g", **kwargs)
    sqlite_registry.add_base(bases["gpt2"], name="gpt2")
    assert sqlite_registry.push(ad, name="g", base="gpt2").created


def _other(kind: str):
    from peft import IA3Config, LoHaConfig, LoKrConfig

    targets = ["q_proj", "v_proj", "down_proj"]
    return {"ia3": IA3Config(target_modules=targets, feedforward_modules=["down_proj"], task_type="CAUSAL_LM"),
            "loha": LoHaConfig(r=4, alpha=8, target_modules=targets, task_type="CAUSAL_LM"),
            "lokr": LoKrConfig(r=4, alpha=8, target_modules=targets, task_type="CAUSAL_LM")}[kind]


@pytest.mark.parametrize("kind", ["ia3", "loha", "lokr"])
def test_ia3_loha_and_lokr_adapters_are_registered(kind, bases, sqlite_registry, tmp_path):
    import torch
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    pm = get_peft_model(AutoModelForCausalLM.from_pretrained(bases["llama"]), _other(kind))
    with torch.no_grad():
        for _name, p in pm.named_parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.05)
    pm.save_pretrained(tmp_path / kind)
    sqlite_registry.add_base(bases["llama"], name="tiny")
    v = sqlite_registry.push(tmp_path / kind, name=kind, base="tiny")
    assert v.created and v.peft_type == kind.upper()
