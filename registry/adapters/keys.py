"""How PEFT adapter tensor names map to modules and to base-checkpoint tensors (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field

from registry.adapters.safetensors import TensorInfo

PREFIX = "base_model.model."
# suffix -> role; the order matters (longest first)
ROLES = (
    (".lora_A.weight", "A"), (".lora_B.weight", "B"), (".lora_B.bias", "B_bias"),
    (".lora_embedding_A", "emb_A"), (".lora_embedding_B", "emb_B"),
    (".lora_magnitude_vector", "magnitude"),
    (".token_adapter.trainable_tokens_delta", "tokens"),
)


@dataclass
class ModuleTensors:
    """The adapter tensors of one base module."""

    module: str
    parts: dict[str, TensorInfo] = field(default_factory=dict)

    @property
    def rank(self) -> int | None:
        a = self.parts.get("A") or self.parts.get("emb_A")
        return a.shape[0] if a else None


@dataclass
class AdapterLayout:
    modules: dict[str, ModuleTensors]  # LoRA modules
    replaced: dict[str, TensorInfo]  # whole tensors replacing the base's (modules_to_save, biases, resized embeddings)
    tokens: dict[str, TensorInfo]  # trainable_token_indices rows per embedding module
    unknown: list[str]  # keys without a recognised shape


def split_key(key: str) -> tuple[str, str] | None:
    """('model.layers.0.self_attn.q_proj', 'A') for a LoRA key, or None."""
    k = key[len(PREFIX):] if key.startswith(PREFIX) else key
    for suffix, role in ROLES:
        if k.endswith(suffix):
            return k[: -len(suffix)], role
    return None


def base_key(key: str) -> str:
    """The base checkpoint tensor a replacing adapter tensor stands for."""
    k = key[len(PREFIX):] if key.startswith(PREFIX) else key
    for wrapped in (".modules_to_save.default", ".modules_to_save", ".original_module", ".base_layer"):
        k = k.replace(wrapped, "")
    return k


def layout(tensors: dict[str, TensorInfo]) -> AdapterLayout:
    modules: dict[str, ModuleTensors] = {}
    replaced: dict[str, TensorInfo] = {}
    tokens: dict[str, TensorInfo] = {}
    unknown: list[str] = []
    for key, info in tensors.items():
        sk = split_key(key)
        if sk is None:
            if key.startswith(PREFIX) or key.endswith((".weight", ".bias")):
                if ".modules_to_save." in key and ".modules_to_save.default." not in key:
                    # peft (save_embedding_layers) also writes the wrapper's copy beside the plain key
                    replaced.setdefault(base_key(key), info)
                elif ".original_module." not in key:  # the base's own tensor, as it was
                    replaced[base_key(key)] = info
            else:
                unknown.append(key)
            continue
        module, role = sk
        if role == "tokens":
            tokens[module] = info
            continue
        modules.setdefault(module, ModuleTensors(module)).parts[role] = info
    return AdapterLayout(modules, replaced, tokens, unknown)
