"""Static compatibility of an adapter with a base model: shapes and names only, no weights loaded.

Produces a report with `errors` (the adapter cannot be right for this base), `warnings` (it
loads, but something is off: it does nothing, it needs a modified base, the vocabulary differs)
and figures. Pure: takes the adapter's tensor infos and the base's layout as data.
"""

from __future__ import annotations

from typing import Any

from registry.adapters import keys as K
from registry.adapters.peft_config import PeftFields
from registry.adapters.safetensors import TensorInfo

EMBED_SUFFIXES = ("embed_tokens.weight", "wte.weight", "word_embeddings.weight", "embed_in.weight")
MAX_LISTED = 10


def _embedding_key(layout: dict[str, list]) -> str | None:
    for k in layout:
        if k.endswith(EMBED_SUFFIXES):
            return k
    return None


def resolve_weight(module: str, layout: dict[str, list], tied: bool) -> str | None:
    """The base tensor a LoRA module updates (a tied lm_head updates the input embedding)."""
    key = f"{module}.weight"
    if key in layout:
        return key
    if tied and module.split(".")[-1] in ("lm_head", "embed_out"):
        return _embedding_key(layout)
    return None


def _shape(layout: dict[str, list], key: str) -> tuple[int, ...]:
    return tuple(layout[key][0])


def check_compat(fields: PeftFields, tensors: dict[str, TensorInfo], layout: dict[str, list], *,
                 base_config: dict[str, Any] | None = None, tied: bool = False,
                 zero_b: list[str] | None = None, adapter_vocab: int | None = None) -> dict[str, Any]:
    """Check every adapter tensor against the base layout. Returns the stored report."""
    if not fields.is_lora:
        return _check_other_type(fields, tensors, layout)
    errors: list[str] = []
    warnings: list[str] = []
    lay = K.layout(tensors)
    ranks: dict[str, int] = {}
    touched = sum(_check_module(module, mt, fields, layout, tied, ranks, errors, warnings)
                  for module, mt in sorted(lay.modules.items()))
    _check_replaced(lay, layout, tied, errors, warnings)
    _check_tokens(lay, layout, tied, errors)
    _check_whole(fields, lay, touched, tied=tied, zero_b=zero_b, base_vocab=(base_config or {}).get("vocab_size"),
                 adapter_vocab=adapter_vocab, errors=errors, warnings=warnings)
    status = "fail" if errors else ("warn" if warnings else "ok")
    return {
        "status": status, "errors": errors, "warnings": warnings, "modules_touched": touched,
        "ranks": sorted(set(ranks.values())), "replaced_tensors": sorted(lay.replaced),
        "trainable_token_modules": sorted(lay.tokens),
    }


def _check_module(module: str, mt: K.ModuleTensors, fields: PeftFields, layout: dict[str, list], tied: bool,
                  ranks: dict[str, int], errors: list[str], warnings: list[str]) -> bool:
    """One LoRA module's tensors against the base weight it updates; True when it counts as touched.

    Its rank goes into `ranks`. A module the base lacks, a base tensor that is no matrix and an
    incomplete pair are not counted: nothing of them could be merged.
    """
    wkey = resolve_weight(module, layout, tied)
    if wkey is None:
        errors.append(f"{module}: no such module in the base model")
        return False
    W = _shape(layout, wkey)
    p = mt.parts
    if "A" in p and "B" in p:
        r = _pair_rank(module, p["A"].shape, p["B"].shape, W, wkey, fields.fan_in_fan_out, errors, warnings)
        if r is None:
            return False
        ranks[module] = r
    elif "emb_A" in p and "emb_B" in p:
        ranks[module] = _embedding_pair_rank(module, p["emb_A"].shape, p["emb_B"].shape, W, wkey, errors)
    elif p:
        errors.append(f"{module}: incomplete LoRA pair (has {', '.join(sorted(p))})")
        return False
    if "magnitude" in p:
        out_dim = W[0] if not fields.fan_in_fan_out else W[-1]
        if p["magnitude"].shape[0] not in (W[0], W[-1]):
            errors.append(f"{module}: DoRA magnitude has {p['magnitude'].shape[0]} entries, expected {out_dim}")
    if "B_bias" in p and f"{module}.bias" not in layout:
        errors.append(f"{module}: lora_bias set but the base layer has no bias")
    if fields.is_lora and module in ranks:
        want, _alpha = fields.scaling_for(module)
        if want is not None and want != ranks[module]:
            errors.append(f"{module}: rank {ranks[module]} in the file but the config resolves r={want}")
    return True


def _pair_rank(module: str, A: tuple[int, ...], B: tuple[int, ...], W: tuple[int, ...], wkey: str,
               fan_in_fan_out: bool, errors: list[str], warnings: list[str]) -> int | None:
    """lora_A / lora_B against a Linear, Conv1D (transposed) or conv weight: the rank, None if W is no matrix."""
    if len(W) != 2 and len(W) < 3:
        errors.append(f"{module}: base tensor {wkey} has shape {list(W)}, not a matrix")
        return None
    if len(W) == 2 and (len(A) != 2 or len(B) != 2):  # peft's Linear / Conv1D LoRA weights are matrices
        errors.append(f"{module}: shape mismatch, lora_A{list(A)} and lora_B{list(B)} must be matrices for "
                      f"{wkey}{list(W)}")
        return None
    if len(A) < 1 or len(B) < 2:
        errors.append(f"{module}: lora_A{list(A)} / lora_B{list(B)} have too few dimensions")
        return None
    r = A[0]
    if B[1] != r:
        errors.append(f"{module}: rank mismatch, lora_A has r={r} but lora_B has r={B[1]}")
    if len(W) == 2:
        linear_ok = (B[0], A[1]) == W
        conv1d_ok = (A[1], B[0]) == W
        if fan_in_fan_out and not conv1d_ok and linear_ok:
            warnings.append(f"{module}: fan_in_fan_out is set but the shapes fit a Linear layer")
        if not (linear_ok or conv1d_ok):
            errors.append(f"{module}: shape mismatch, lora_B{list(B)} @ lora_A{list(A)} does not fit "
                          f"{wkey}{list(W)}")
    elif len(W) >= 3 and (A[1] != W[1] or B[0] != W[0]):
        errors.append(f"{module}: conv shape mismatch, A{list(A)} B{list(B)} vs {wkey}{list(W)}")
    return r


def _embedding_pair_rank(module: str, A: tuple[int, ...], B: tuple[int, ...], W: tuple[int, ...], wkey: str,
                         errors: list[str]) -> int:
    """lora_embedding_A (r, num_embeddings) / lora_embedding_B (dim, r) against the embedding: the rank."""
    r = A[0]
    if B[1] != r:
        errors.append(f"{module}: rank mismatch, lora_embedding_A r={r}, lora_embedding_B r={B[1]}")
    if (A[1], B[0]) != W:
        errors.append(f"{module}: embedding shape mismatch, ({A[1]}, {B[0]}) vs {wkey}{list(W)}")
    return r


def _check_replaced(lay: K.AdapterLayout, layout: dict[str, list], tied: bool, errors: list[str],
                    warnings: list[str]) -> None:
    """Whole tensors that replace the base's (modules_to_save, biases): same shape, or a resized vocabulary."""
    for key, info in sorted(lay.replaced.items()):
        if key not in layout:
            tied_head = tied and key.split(".")[-2:-1] == ["lm_head"]
            if not tied_head:
                errors.append(f"{key}: replaces a tensor the base does not have")
            continue
        W = _shape(layout, key)
        if tuple(info.shape) != W:
            if key.endswith(EMBED_SUFFIXES) or "lm_head" in key:
                warnings.append(f"{key}: vocabulary resized, adapter has {list(info.shape)}, base {list(W)}; "
                                "merge into a base resized to match")
            else:
                errors.append(f"{key}: shape {list(info.shape)} does not match the base's {list(W)}")


def _check_tokens(lay: K.AdapterLayout, layout: dict[str, list], tied: bool, errors: list[str]) -> None:
    """Trainable token rows: their module exists and the rows are as wide as its weight."""
    for module, info in sorted(lay.tokens.items()):
        wkey = resolve_weight(module, layout, tied)
        if wkey is None:
            errors.append(f"{module}: trainable tokens for a module the base does not have")
        elif info.shape[-1] != _shape(layout, wkey)[-1]:
            errors.append(f"{module}: trainable token rows have width {info.shape[-1]}, "
                          f"base {_shape(layout, wkey)[-1]}")


def _check_whole(fields: PeftFields, lay: K.AdapterLayout, touched: int, *, tied: bool, zero_b: list[str] | None,
                 base_vocab: int | None, adapter_vocab: int | None, errors: list[str], warnings: list[str]) -> None:
    """What only the adapter as a whole shows: it does nothing, needs a modified base, or cannot merge."""
    if lay.unknown:
        warnings.append(f"{len(lay.unknown)} tensors of unknown role: {', '.join(lay.unknown[:MAX_LISTED])}")
    if fields.is_lora and touched == 0 and not lay.replaced and not lay.tokens:
        errors.append("the adapter touches no module of the base model")
    if zero_b and fields.is_lora and len(zero_b) >= len([m for m in lay.modules.values() if m.parts]):
        warnings.append("every lora_B is all zeros: the adapter loads but does nothing")
    elif zero_b:
        warnings.append(f"{len(zero_b)} lora_B tensors are all zeros")
    if fields.changes_base:
        warnings.append(f"init_lora_weights={fields.init_method}: training modified the base weights themselves; "
                        "this adapter is only correct on that modified base (convert it with peft's "
                        "path_initial_model_for_weight_conversion before registering)")
    if tied and any(m.split(".")[-1] in ("lm_head", "embed_tokens", "wte") for m in lay.modules):
        warnings.append("LoRA on a tied embedding: merging changes input and output embeddings together, "
                        "so the merged model differs from the unmerged adapter")
    if adapter_vocab and base_vocab and adapter_vocab > base_vocab:
        warnings.append(f"the adapter's tokenizer has {adapter_vocab} tokens but the base vocabulary is {base_vocab}")
    if fields.layer_replication:
        warnings.append("layer_replication is set: peft cannot merge this adapter")


def _check_other_type(fields: PeftFields, tensors: dict[str, TensorInfo], layout: dict[str, list]) -> dict[str, Any]:
    """Non-LoRA PEFT types (IA3, LoHa, LoKr, ...): every tensor must belong to a module of the base.

    Their parameter names and shapes differ per method, so this checks names only: a tensor's
    module is the longest dotted prefix of its name that is a base module (has `<prefix>.weight`).
    """
    errors: list[str] = []
    touched: set[str] = set()
    for key, info in sorted(tensors.items()):
        k = K.base_key(key)
        if k in layout:  # a whole tensor saved in place of the base's (modules_to_save)
            if tuple(info.shape) != tuple(layout[k][0]):
                errors.append(f"{k}: shape {list(info.shape)} does not match the base's {list(layout[k][0])}")
            touched.add(k.rsplit(".", 1)[0])
            continue
        parts = k.split(".")
        module = next((".".join(parts[:i]) for i in range(len(parts) - 1, 0, -1)
                       if ".".join(parts[:i]) + ".weight" in layout), None)
        if module is None:
            errors.append(f"{key}: no module of the base model matches")
        else:
            touched.add(module)
    if not touched and not errors:
        errors.append("the adapter touches no module of the base model")
    warnings = [f"{fields.peft_type} adapters get a module-name check only (shapes are checked for the LoRA family)"]
    return {"status": "fail" if errors else "warn", "errors": errors[:50], "warnings": warnings,
            "modules_touched": len(touched), "ranks": [fields.rank] if fields.rank else [],
            "replaced_tensors": [], "trainable_token_modules": []}
