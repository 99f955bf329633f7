"""Which adapter tensor does what to which base tensor: a pure function of headers and configs.

`make_plan` re-enacts what `PeftModel.from_pretrained(...).merge_and_unload()` would do, without
any weights: peft's target matching over the base's module names (targets.py), its key mapping
(reference §1.10), the replacements done by `load_state_dict` (modules_to_save, bias="all",
save_embedding_layers), then the merges in `named_modules()` order, with tied weights resolved to
the one stored tensor. It refuses, with the offending names, adapter files that peft would load
differently from what they say: tensors it would silently ignore, tensors it would leave at their
random initialisation. Anything it cannot reproduce exactly raises `Unsupported`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from registry.dtypes import FLOAT_CODES
from registry.errors import Incompatible, InvalidAdapter, Unsupported
from registry.merge import targets
from registry.merge.structure import CONV1D, EMBEDDING, LINEAR, Structure

PREFIX = "base_model.model."

# Config fields that change what peft computes and that the streaming engine does not reproduce:
# a value other than the default sends the merge to the peft engine.
_UNSUPPORTED_FIELDS = {
    "layer_replication": None, "target_parameters": None, "use_qalora": False, "use_bdlora": None,
    "arrow_config": None, "kasa_config": None, "velora_config": None, "monteclora_config": None,
    "alora_invocation_tokens": None, "megatron_config": None, "ensure_weight_tying": False,
}
# Fields that do not change the merged weights (or that make_plan handles).
_KNOWN_FIELDS = {
    "task_type", "peft_type", "auto_mapping", "base_model_name_or_path", "revision", "inference_mode",
    "r", "target_modules", "exclude_modules", "lora_alpha", "lora_dropout", "fan_in_fan_out", "bias",
    "use_rslora", "modules_to_save", "init_lora_weights", "layers_to_transform", "layers_pattern",
    "rank_pattern", "alpha_pattern", "megatron_core", "trainable_token_indices", "loftq_config",
    "eva_config", "corda_config", "lora_ga_config", "use_dora", "qalora_group_size", "lora_bias",
    "peft_version", "runtime_config",
}


@dataclass(frozen=True)
class Op:
    """One step applied to a stored tensor, in peft's order."""

    kind: str  # "replace" | "lora" | "lora_embedding" | "lora_bias" | "tokens"
    module: str
    src: str | None = None  # replace/tokens/lora_bias: the adapter key
    a: str | None = None
    b: str | None = None
    magnitude: str | None = None  # DoRA
    scaling: float = 1.0
    fan_in_fan_out: bool = False
    indices: tuple[int, ...] = ()


@dataclass(frozen=True)
class OutTensorPlan:
    name: str
    source: str | None  # base key the value starts from; None when the first op replaces it
    dtype: str  # safetensors dtype of the output
    shape: tuple[int, ...]
    ops: tuple[Op, ...] = ()


@dataclass(frozen=True)
class Plan:
    tensors: tuple[OutTensorPlan, ...]
    config_updates: dict[str, Any] = field(default_factory=dict)
    lora_modules: tuple[str, ...] = ()


def check_config(cfg: Mapping[str, Any]) -> None:
    """Refuse what is not LoRA, send to peft what the streaming engine does not reproduce."""
    if cfg.get("peft_type", "LORA") != "LORA":
        raise Unsupported(f"peft_type {cfg.get('peft_type')} is not LoRA")
    if cfg.get("task_type") not in (None, "CAUSAL_LM"):
        raise Unsupported(f"task_type {cfg.get('task_type')} (only CAUSAL_LM is streamed)")
    for key, default in _UNSUPPORTED_FIELDS.items():
        if cfg.get(key, default) not in (default, None, False, [], {}):
            raise Unsupported(f"adapter config {key}={cfg[key]!r} is not reproduced by the streaming engine")
    unknown = [k for k, v in cfg.items() if k not in _KNOWN_FIELDS and k not in _UNSUPPORTED_FIELDS
               and v not in (None, False, [], {}, "")]
    if unknown:
        raise Unsupported(f"adapter config has fields this engine does not know: {sorted(unknown)}")
    init = cfg.get("init_lora_weights", True)
    if isinstance(init, str) and init.lower() != "gaussian":
        raise Unsupported(f"init_lora_weights={init!r} changes the base weights when peft loads it")
    if cfg.get("use_dora") and cfg.get("lora_bias"):
        raise InvalidAdapter("use_dora and lora_bias cannot be combined (peft refuses this config)")


def make_plan(
    cfg: Mapping[str, Any],
    adapter: Mapping[str, tuple[str, tuple[int, ...]]],  # key -> (dtype, shape)
    base: Mapping[str, tuple[str, tuple[int, ...]]],  # checkpoint key -> (dtype, shape), in order
    structure: Structure,
    out_dtype: str,
) -> Plan:
    """Map every adapter tensor onto the base checkpoint, or refuse.

    Raises:
        Incompatible: the adapter does not fit this base (shapes, names, missing tensors).
        Unsupported: peft would do something this engine does not reproduce exactly.
    """
    check_config(cfg)
    mods = {m.name: m for m in structure.modules}
    if structure.keep_in_fp32 and out_dtype != "F32":
        raise Unsupported(f"{structure.model_type} keeps {structure.keep_in_fp32} in fp32")
    bad_files = [k for k in adapter if not k.startswith(PREFIX)]
    if bad_files:
        raise Incompatible(f"adapter keys without the {PREFIX!r} prefix: {sorted(bad_files)[:20]}",
                           names=sorted(bad_files))

    # -- which modules peft wraps, and with what ------------------------------------------------
    conf = dict(cfg)
    if isinstance(conf.get("target_modules"), str) and conf["target_modules"].lower() == targets.ALL_LINEAR:
        conf["target_modules"] = targets.expand_all_linear(
            [m.name for m in structure.modules if m.kind in (LINEAR, CONV1D)], structure.output_embedding)
    if conf.get("target_modules") is None:
        raise Unsupported("adapter config has no target_modules")
    mts = conf.get("modules_to_save") or []
    lora_mods = [m for m in structure.modules if m.name and targets.lora_target(conf, m.name)]
    if not lora_mods and not mts and not conf.get("trainable_token_indices"):
        raise Incompatible(f"target_modules {conf['target_modules']!r} match no module of this "
                           f"{structure.model_type} base", hint="is the adapter for another base model?")
    for m in lora_mods:
        if m.kind not in (LINEAR, CONV1D, EMBEDDING):
            raise Unsupported(f"LoRA on {m.name} ({m.type_name}) is not streamed")
    saved_mods = [m for m in structure.modules if m.name and targets.is_module_to_save(mts, m.name)]
    if any(m.kind == "other" and not m.params for m in saved_mods):
        raise Unsupported("modules_to_save on a container module")
    tokens = _token_targets(conf, structure)

    # -- storage: stored key of each parameter (ties resolved) ------------------------------------
    ties = {k: v for k, v in structure.ties.items() if v in base}
    order = [k for k in base if k not in ties]  # transformers drops tied duplicates on save

    def storage(key: str) -> str:
        return ties.get(key, key)

    ops: dict[str, list[Op]] = {k: [] for k in order}
    new_shape: dict[str, tuple[int, ...]] = {}
    extra: list[OutTensorPlan] = []  # tensors that become separate (untied)
    used: set[str] = set()
    missing: list[str] = []
    untied: set[str] = set()

    def shape_of(key: str) -> tuple[int, ...]:
        st = storage(key)
        return new_shape.get(st, base[st][1])

    # -- load phase: file values that load_state_dict copies over base parameters -------------------
    lora_names = {m.name for m in lora_mods}
    wrapped = lora_names | {m.name for m in saved_mods} | set(tokens)
    for m in saved_mods:
        for p in m.params:
            src = f"{PREFIX}{m.name}.{p}"
            if src not in adapter:
                continue
            used.add(src)
            key = f"{m.name}.{p}"
            if key in ties or any(v == key for v in ties.values()):
                untied.add(key)
            _check_shape(adapter[src][1], shape_of(key), src)
            ops[storage(key)].append(Op("replace", m.name, src=src))
        for k in adapter:  # peft also saves the wrapper's internals in some versions
            if k.startswith(f"{PREFIX}{m.name}.original_module.") or k.startswith(f"{PREFIX}{m.name}.modules_to_save."):
                raise Unsupported(f"adapter carries wrapper internals ({k})")
    for k in adapter:
        if k in used or not k.endswith((".weight", ".bias")):
            continue
        name = k[len(PREFIX):]
        mod, _, p = name.rpartition(".")
        if mod.endswith(".base_layer") and mod[: -len(".base_layer")] in lora_names:
            mod = mod[: -len(".base_layer")]
        elif mod in wrapped or mod not in mods:
            continue  # peft would not find a parameter with this name: left for the "ignored" report
        if p not in mods[mod].params:
            continue
        key = f"{mod}.{p}"
        st = storage(key)
        if adapter[k][1] != shape_of(key):
            new_shape[st] = _resized(adapter[k][1], shape_of(key), key, structure)
        used.add(k)
        ops[st].append(Op("replace", mod, src=k))

    # -- merge phase, in named_modules() order -------------------------------------------------
    for m in structure.modules:
        if m.name in lora_names:
            r, alpha = targets.rank_and_alpha(conf, m.name)
            s = targets.scaling(conf, r, alpha)
            p = f"{PREFIX}{m.name}."
            emb = m.kind == EMBEDDING
            a, b = (p + "lora_embedding_A", p + "lora_embedding_B") if emb else (p + "lora_A.weight", p + "lora_B.weight")
            mag = p + "lora_magnitude_vector" if conf.get("use_dora") else None
            lbias = p + "lora_B.bias" if conf.get("lora_bias") and not emb else None
            need = [x for x in (a, b, mag, lbias) if x]
            miss = [x for x in need if x not in adapter]
            if miss:
                missing += miss
                continue
            used.update(need)
            w = f"{m.name}.weight"
            _check_lora_shapes(m.kind, shape_of(w), r, adapter, a, b, mag, m.name)
            ops[storage(w)].append(Op("lora_embedding" if emb else "lora", m.name, a=a, b=b, magnitude=mag,
                                      scaling=s, fan_in_fan_out=m.kind == CONV1D))
            if lbias:
                if "bias" not in m.params:
                    raise Incompatible(f"lora_bias=True but {m.name} has no bias")
                _check_shape(adapter[lbias][1], shape_of(f"{m.name}.bias"), lbias)
                ops[storage(f"{m.name}.bias")].append(Op("lora_bias", m.name, src=lbias, scaling=s))
        if m.name in tokens:
            src = f"{PREFIX}{m.name}.token_adapter.trainable_tokens_delta"
            if src not in adapter:
                missing.append(src)
                continue
            used.add(src)
            idx = tokens[m.name]
            w = f"{m.name}.weight"
            _check_shape(adapter[src][1], (len(idx), shape_of(w)[1]), src)
            if max(idx) >= shape_of(w)[0]:
                raise Incompatible(f"trainable token index {max(idx)} is outside {m.name} ({shape_of(w)[0]} rows)")
            ops[storage(w)].append(Op("tokens", m.name, src=src, indices=tuple(idx)))

    if missing:
        raise Incompatible(
            f"the adapter lacks {len(missing)} tensors for modules its config targets (peft would merge "
            f"their random initialisation): {sorted(missing)[:20]}", names=sorted(missing),
            hint="the adapter file and adapter_config.json do not belong together")
    ignored = sorted(set(adapter) - used)
    if ignored:
        raise Incompatible(
            f"the adapter has {len(ignored)} tensors that peft would silently ignore with this config and "
            f"base: {ignored[:20]}", names=ignored,
            hint="the adapter is for another base model, or its target_modules do not match its weights")

    # -- untying: a module_to_save copy of a tied parameter becomes a tensor of its own --------------
    config_updates: dict[str, Any] = {}
    if untied:
        for key in untied:
            st = storage(key)
            if len(ops[st]) != 1:
                raise Unsupported(f"modules_to_save on tied {key} combined with other changes to it")
        for tied_key, src_key in ties.items():
            if tied_key in untied:  # e.g. lm_head copy: new tensor, the embedding is kept
                op = ops[src_key].pop()
                extra.append(OutTensorPlan(tied_key, None, _dtype(base[src_key][0], out_dtype),
                                           adapter[op.src][1], (op,)))
            elif src_key in untied:  # embedding copy: the head keeps the original values
                extra.append(OutTensorPlan(tied_key, src_key, _dtype(base[src_key][0], out_dtype),
                                           base[src_key][1]))
        config_updates["tie_word_embeddings"] = False

    vocab = _vocab_update(new_shape, structure, ties)
    if vocab is not None:
        config_updates["vocab_size"] = vocab
    out = [OutTensorPlan(k, k, _dtype(base[k][0], out_dtype), new_shape.get(k, base[k][1]), tuple(ops[k]))
           for k in order]
    return Plan(tuple(out + extra), config_updates, tuple(m.name for m in lora_mods))


def _dtype(src: str, out: str) -> str:
    return out if src in FLOAT_CODES else src


def _check_shape(got: tuple[int, ...], want: tuple[int, ...], key: str) -> None:
    if tuple(got) != tuple(want):
        raise Incompatible(f"{key} has shape {list(got)}, the base needs {list(want)}",
                           hint="is the adapter for another base model?")


def _check_lora_shapes(kind, w_shape, r, adapter, a, b, mag, name) -> None:
    if len(w_shape) != 2:
        raise Unsupported(f"{name}: weight of rank {len(w_shape)}")
    if kind == LINEAR:
        out_f, in_f = w_shape
    elif kind == CONV1D:
        in_f, out_f = w_shape
    else:  # embedding: A (r, num_embeddings), B (dim, r)
        in_f, out_f = w_shape
    _check_shape(adapter[a][1], (r, in_f), a)
    _check_shape(adapter[b][1], (out_f, r), b)
    if mag:
        _check_shape(adapter[mag][1], (out_f,), mag)


def _resized(got, want, key: str, structure: Structure) -> tuple[int, ...]:
    """A replacement with another first dimension: only a vocabulary resize of an embedding."""
    emb_keys = {f"{structure.input_embedding}.weight", f"{structure.output_embedding}.weight"}
    if key in emb_keys and len(got) == 2 and got[1] == want[1]:
        return tuple(got)
    raise Incompatible(f"{key}: the adapter's tensor has shape {list(got)}, the base's {list(want)}",
                       hint="is the adapter for another base model?")


def _vocab_update(new_shape, structure: Structure, ties) -> int | None:
    if not new_shape:
        return None
    need = {f"{structure.input_embedding}.weight"}
    if structure.output_embedding:
        out_key = f"{structure.output_embedding}.weight"
        need.add(ties.get(out_key, out_key))
    sizes = {new_shape[k][0] for k in need if k in new_shape}
    if need - set(new_shape) or len(sizes) != 1:
        have = {k: v[0] for k, v in new_shape.items()}
        raise Incompatible(
            f"the adapter was trained with a resized vocabulary {have} but does not carry every "
            f"vocabulary-sized tensor ({sorted(need - set(new_shape))} missing): the merge would depend "
            "on how the base is resized", hint="save the adapter with save_embedding_layers=True, or "
            "resize and save the base first")
    return sizes.pop()


def _token_targets(conf, structure: Structure) -> dict[str, list[int]]:
    tti = conf.get("trainable_token_indices")
    if not tti:
        return {}
    if isinstance(tti, dict):
        out = {}
        for layer, idx in tti.items():
            names = [m.name for m in structure.modules if m.name and m.name.endswith(layer)]
            if len(names) != 1:
                raise Unsupported(f"trainable_token_indices layer {layer!r} matches {names}")
            out[names[0]] = list(idx)
        if len(out) > 1:
            raise Unsupported("trainable tokens on several layers")
        return out
    if not structure.input_embedding:
        raise Unsupported("trainable tokens without an input embedding")
    return {structure.input_embedding: list(tti)}
