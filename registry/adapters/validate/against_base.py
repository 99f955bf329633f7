"""An adapter against the base it is pushed for: what peft would ignore, what needs another base.

- Every module `target_modules` names exists in the base: peft only complains when *none* does,
  so a misspelt or foreign name silently trains (and ships) nothing for it.
- A vocabulary the adapter was trained with that differs from the base's: the adapter belongs to
  a base resized with resize_token_embeddings, which must be registered as its own base.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from registry.adapters import keys as K
from registry.adapters.safetensors import TensorInfo
from registry.adapters.validate import Finding

EMBED_SUFFIXES = ("embed_tokens.weight", "wte.weight", "word_embeddings.weight", "embed_in.weight")
HEADS = ("lm_head", "embed_out")
MAX_LISTED = 5


def base_modules(layout: Mapping[str, Any], *, tied: bool) -> set[str]:
    mods = {k.rsplit(".", 1)[0] for k in layout if "." in k}
    if tied:
        mods.update(HEADS)  # a tied head is a module of the model, though no tensor of the checkpoint
    return mods


def check_targets(conf: Mapping[str, Any], layout: Mapping[str, Any], *, tied: bool, base: str) -> list[Finding]:
    tm = conf.get("target_modules")
    if not isinstance(tm, list) or not tm:
        return []  # a regex or "all-linear": peft matches it against the model itself
    mods = base_modules(layout, tied=tied)
    absent = [t for t in tm if isinstance(t, str) and not any(m == t or m.endswith(f".{t}") for m in mods)]
    if not absent:
        return []
    return [Finding("CONFIG_TARGET_NOT_IN_BASE", f"adapter_config.json: target_modules names "
                    f"{', '.join(map(repr, absent[:MAX_LISTED]))}, which base {base} does not have",
                    file="adapter_config.json", field="target_modules")]


def _embedding(layout: Mapping[str, Any]) -> tuple[str, int] | None:
    for k, v in layout.items():
        if k.endswith(EMBED_SUFFIXES):
            return k, int(v[0][0])
    return None


def check_vocab(tensors: Mapping[str, TensorInfo], layout: Mapping[str, Any], *, base: str,
                hint: str | None) -> list[Finding]:
    """The vocabulary the adapter's embedding tensors were trained with against the base's."""
    emb = _embedding(layout)
    if emb is None:
        return []
    _key, vocab = emb
    lay = K.layout(dict(tensors))
    seen: dict[str, int] = {}
    for module, mt in lay.modules.items():
        if "emb_A" in mt.parts and module.endswith(tuple(s.rsplit(".", 1)[0] for s in EMBED_SUFFIXES)):
            seen[f"{module}.lora_embedding_A"] = mt.parts["emb_A"].shape[-1]
    for name, info in tensors.items():
        k = K.base_key(name).removesuffix(".modules_to_save.weight")
        if (k.endswith(EMBED_SUFFIXES) or k.rsplit(".", 2)[-2:-1] == ["lm_head"]) and len(info.shape) == 2:
            seen[name] = info.shape[0]
    wrong = {n: v for n, v in seen.items() if v != vocab}
    if not wrong:
        return []
    name, theirs = next(iter(wrong.items()))
    where = f" (the config names {hint})" if hint else ""
    return [Finding("BASE_VOCAB_RESIZED", f"{name}: the adapter was trained with a vocabulary of {theirs} tokens but "
                    f"base {base} has {vocab}: it belongs to a base resized to {theirs} tokens", field=name,
                    hint=f"register the resized base{where}: resize_token_embeddings({theirs}), save_pretrained, "
                    f"then `adapter-registry base add PATH --name {base}-resized` and push with --base "
                    f"{base}-resized")]
