"""The tensors each architecture needs, as a table (registering a base stays torch-free).

The table is checked against the architecture itself: tests/validation/test_archs.py builds each
model class on the meta device (transformers, `torch.device("meta")`) from a config and compares
its state dict with `expected_tensors`. An architecture not in the table gets no missing-tensor
check (and a note); adding a row is adding it to that test.
"""

from __future__ import annotations

from typing import Any, NamedTuple


class Arch(NamedTuple):
    layers: str  # the prefix of the numbered blocks
    per_layer: tuple[str, ...]
    embed: str
    norm: tuple[str, ...]  # the final norm's tensors
    extra: tuple[str, ...] = ()  # other whole-model tensors


_LLAMA_LAYER = ("input_layernorm.weight", "post_attention_layernorm.weight", "mlp.down_proj.weight",
                "mlp.gate_proj.weight", "mlp.up_proj.weight", "self_attn.k_proj.weight", "self_attn.o_proj.weight",
                "self_attn.q_proj.weight", "self_attn.v_proj.weight")
_LLAMA = Arch("model.layers", _LLAMA_LAYER, "model.embed_tokens.weight", ("model.norm.weight",))
ARCHS: dict[str, Arch] = {
    "llama": _LLAMA,
    "mistral": _LLAMA,
    "gemma": _LLAMA,
    "qwen2": _LLAMA._replace(per_layer=(*_LLAMA_LAYER, "self_attn.k_proj.bias", "self_attn.q_proj.bias",
                                        "self_attn.v_proj.bias")),
    "qwen3": _LLAMA._replace(per_layer=(*_LLAMA_LAYER, "self_attn.k_norm.weight", "self_attn.q_norm.weight")),
    "gpt2": Arch("transformer.h", ("attn.c_attn.bias", "attn.c_attn.weight", "attn.c_proj.bias",
                                   "attn.c_proj.weight", "ln_1.bias", "ln_1.weight", "ln_2.bias", "ln_2.weight",
                                   "mlp.c_fc.bias", "mlp.c_fc.weight", "mlp.c_proj.bias", "mlp.c_proj.weight"),
                 "transformer.wte.weight", ("transformer.ln_f.bias", "transformer.ln_f.weight"),
                 ("transformer.wpe.weight",)),
}
# config options that add tensors the table does not list (llama's attention_bias, mlp_bias)
OPTIONAL_SUFFIXES = (".bias",)


def _int(config: dict[str, Any], *names: str) -> int | None:
    for n in names:
        v = config.get(n)
        if isinstance(v, int) and not isinstance(v, bool):
            return v
    return None


def tied(config: dict[str, Any]) -> bool | None:
    """Whether config.json ties the output embedding to the input one (None: it does not say)."""
    v = config.get("tie_word_embeddings")
    return None if v is None else bool(v)


def expected_tensors(config: dict[str, Any]) -> dict[str, tuple[int, ...] | None] | None:
    """{tensor: shape or None (not checked)} the architecture of `config` needs; None when not in the table."""
    arch = ARCHS.get(str(config.get("model_type")))
    layers = _int(config, "num_hidden_layers", "n_layer")
    if arch is None or layers is None or layers > 100_000:
        return None
    hidden = _int(config, "hidden_size", "n_embd")
    vocab = _int(config, "vocab_size")
    emb = (vocab, hidden) if vocab is not None and hidden is not None else None
    out: dict[str, tuple[int, ...] | None] = {arch.embed: emb}
    for n in arch.norm:
        out[n] = (hidden,) if hidden is not None else None
    for n in arch.extra:
        out[n] = None
    if tied(config) is False:
        out["lm_head.weight"] = emb
    for i in range(layers):
        for k in arch.per_layer:
            out[f"{arch.layers}.{i}.{k}"] = None
    return out
