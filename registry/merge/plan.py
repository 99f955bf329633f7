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
from registry.merge.structure import CONV1D, EMBEDDING, LINEAR, Module, Structure

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

    The phases follow peft's own: which modules it wraps, what `load_state_dict` copies over base
    parameters, the merges in `named_modules()` order; then the refusals (tensors peft would
    ignore or leave random) and the untying of tied parameters that modules_to_save copied.

    Raises:
        Incompatible: the adapter does not fit this base (shapes, names, missing tensors).
        Unsupported: peft would do something this engine does not reproduce exactly.
    """
    check_config(cfg)
    if structure.keep_in_fp32 and out_dtype != "F32":
        raise Unsupported(f"{structure.model_type} keeps {structure.keep_in_fp32} in fp32")
    bad_files = [k for k in adapter if not k.startswith(PREFIX)]
    if bad_files:
        raise Incompatible(f"adapter keys without the {PREFIX!r} prefix: {sorted(bad_files)[:20]}",
                           names=sorted(bad_files))
    wrapped = _wrapped_modules(cfg, structure)
    t = _Tensors(adapter, base, structure)
    _load_modules_to_save(t, wrapped.saved)
    _load_replaced_parameters(t, wrapped, structure)
    _merge_in_module_order(t, wrapped, structure)
    t.refuse_missing_and_ignored()
    extra, config_updates = _untie(t, out_dtype)
    vocab = _vocab_update(t.new_shape, structure, t.ties)
    if vocab is not None:
        config_updates["vocab_size"] = vocab
    out = [OutTensorPlan(k, k, _dtype(base[k][0], out_dtype), t.new_shape.get(k, base[k][1]), tuple(t.ops[k]))
           for k in t.order]
    return Plan(tuple(out + extra), config_updates, tuple(m.name for m in wrapped.lora))


@dataclass(frozen=True)
class _Wrapped:
    """The modules peft wraps, and with what: LoRA layers, modules_to_save copies, trainable tokens."""

    conf: dict[str, Any]  # the adapter config, "all-linear" expanded to module names
    lora: list[Module]
    saved: list[Module]
    tokens: dict[str, list[int]]  # embedding module -> trainable token ids

    @property
    def lora_names(self) -> set[str]:
        return {m.name for m in self.lora}


def _wrapped_modules(cfg: Mapping[str, Any], structure: Structure) -> _Wrapped:
    """peft's target matching (targets.py) over the base's module names, with what it refuses."""
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
    return _Wrapped(conf, lora_mods, saved_mods, _token_targets(conf, structure))


class _Tensors:
    """The plan under construction: the ops on each stored tensor, and what each adapter tensor did.

    A tied parameter (lm_head.weight tied to the embedding) has no tensor of its own in the
    checkpoint (transformers drops tied duplicates on save), so every op lands on its storage key.
    """

    def __init__(self, adapter: Mapping[str, tuple[str, tuple[int, ...]]],
                 base: Mapping[str, tuple[str, tuple[int, ...]]], structure: Structure):
        self.adapter = adapter
        self.base = base
        self.ties = {k: v for k, v in structure.ties.items() if v in base}
        self.order = [k for k in base if k not in self.ties]
        self.ops: dict[str, list[Op]] = {k: [] for k in self.order}
        self.new_shape: dict[str, tuple[int, ...]] = {}  # stored key -> resized shape (vocabulary)
        self.used: set[str] = set()  # adapter keys some op reads
        self.missing: list[str] = []  # adapter keys peft expects and the file lacks
        self.untied: set[str] = set()  # tied parameters a modules_to_save copy replaces

    def storage(self, key: str) -> str:
        return self.ties.get(key, key)

    def shape_of(self, key: str) -> tuple[int, ...]:
        st = self.storage(key)
        return self.new_shape.get(st, self.base[st][1])

    def add(self, key: str, op: Op) -> None:
        self.ops[self.storage(key)].append(op)

    def refuse_missing_and_ignored(self) -> None:
        """peft would merge random values for missing tensors and silently drop ignored ones."""
        if self.missing:
            raise Incompatible(
                f"the adapter lacks {len(self.missing)} tensors for modules its config targets (peft would merge "
                f"their random initialisation): {sorted(self.missing)[:20]}", names=sorted(self.missing),
                hint="the adapter file and adapter_config.json do not belong together")
        ignored = sorted(set(self.adapter) - self.used)
        if ignored:
            raise Incompatible(
                f"the adapter has {len(ignored)} tensors that peft would silently ignore with this config and "
                f"base: {ignored[:20]}", names=ignored,
                hint="the adapter is for another base model, or its target_modules do not match its weights")


def _load_modules_to_save(t: _Tensors, saved: list[Module]) -> None:
    """Load phase, modules_to_save: the file's copy replaces each parameter of the module."""
    for m in saved:
        for p in m.params:
            # save_embedding_layers (a resized vocabulary) also writes the wrapper's copy and the original
            # beside the plain key; the copy is the same tensor, the original is the base's own
            plain, copy, orig = (f"{PREFIX}{m.name}.{p}", f"{PREFIX}{m.name}.modules_to_save.{p}",
                                 f"{PREFIX}{m.name}.original_module.{p}")
            src = plain if plain in t.adapter else copy
            if src not in t.adapter:
                continue
            key = f"{m.name}.{p}"
            for k in (plain, copy, orig):
                if k in t.adapter:
                    t.used.add(k)
                    _check_shape(t.adapter[k][1], t.shape_of(key), k)
            if key in t.ties or any(v == key for v in t.ties.values()):
                t.untied.add(key)
            t.add(key, Op("replace", m.name, src=src))
        for k in t.adapter:  # anything else of the wrapper is not something peft's load would use
            if k not in t.used and (k.startswith(f"{PREFIX}{m.name}.original_module.")
                                    or k.startswith(f"{PREFIX}{m.name}.modules_to_save.")):
                raise Unsupported(f"adapter carries wrapper internals ({k})")


def _load_replaced_parameters(t: _Tensors, wrapped: _Wrapped, structure: Structure) -> None:
    """Load phase, plain parameters (bias="all", save_embedding_layers): `load_state_dict` copies them.

    A LoRA-wrapped module's own weight is found under `.base_layer.`; a resized embedding changes
    the stored shape (the vocabulary check comes later, in `_vocab_update`).
    """
    mods = {m.name: m for m in structure.modules}
    lora_names = wrapped.lora_names
    wrapped_names = lora_names | {m.name for m in wrapped.saved} | set(wrapped.tokens)
    for k in t.adapter:
        if k in t.used or not k.endswith((".weight", ".bias")):
            continue
        name = k[len(PREFIX):]
        mod, _, p = name.rpartition(".")
        if mod.endswith(".base_layer") and mod[: -len(".base_layer")] in lora_names:
            mod = mod[: -len(".base_layer")]
        elif mod in wrapped_names or mod not in mods:
            continue  # peft would not find a parameter with this name: left for the "ignored" report
        if p not in mods[mod].params:
            continue
        key = f"{mod}.{p}"
        if t.adapter[k][1] != t.shape_of(key):
            t.new_shape[t.storage(key)] = _resized(t.adapter[k][1], t.shape_of(key), key, structure)
        t.used.add(k)
        t.add(key, Op("replace", mod, src=k))


def _merge_in_module_order(t: _Tensors, wrapped: _Wrapped, structure: Structure) -> None:
    """Merge phase: LoRA deltas and trainable-token rows, in `named_modules()` order as peft merges."""
    lora_names = wrapped.lora_names
    for m in structure.modules:
        if m.name in lora_names and not _add_lora(t, wrapped.conf, m):
            continue  # its tensors are missing: refused later, with every other missing one
        if m.name in wrapped.tokens:
            _add_tokens(t, m, wrapped.tokens[m.name])


def _add_lora(t: _Tensors, conf: Mapping[str, Any], m: Module) -> bool:
    """The LoRA op (and lora_bias op) of module `m`; False when the file lacks some of its tensors."""
    r, alpha = targets.rank_and_alpha(conf, m.name)
    s = targets.scaling(conf, r, alpha)
    p = f"{PREFIX}{m.name}."
    emb = m.kind == EMBEDDING
    a, b = (p + "lora_embedding_A", p + "lora_embedding_B") if emb else (p + "lora_A.weight", p + "lora_B.weight")
    mag = p + "lora_magnitude_vector" if conf.get("use_dora") else None
    lbias = p + "lora_B.bias" if conf.get("lora_bias") and not emb else None
    need = [x for x in (a, b, mag, lbias) if x]
    miss = [x for x in need if x not in t.adapter]
    if miss:
        t.missing += miss
        return False
    t.used.update(need)
    w = f"{m.name}.weight"
    _check_lora_shapes(m.kind, t.shape_of(w), r, t.adapter, a, b, mag, m.name)
    t.add(w, Op("lora_embedding" if emb else "lora", m.name, a=a, b=b, magnitude=mag, scaling=s,
                fan_in_fan_out=m.kind == CONV1D))
    if lbias:
        if "bias" not in m.params:
            raise Incompatible(f"lora_bias=True but {m.name} has no bias")
        _check_shape(t.adapter[lbias][1], t.shape_of(f"{m.name}.bias"), lbias)
        t.add(f"{m.name}.bias", Op("lora_bias", m.name, src=lbias, scaling=s))
    return True


def _add_tokens(t: _Tensors, m: Module, idx: list[int]) -> None:
    """The trainable-tokens op of embedding `m`: its rows `idx` become the file's rows."""
    src = f"{PREFIX}{m.name}.token_adapter.trainable_tokens_delta"
    if src not in t.adapter:
        t.missing.append(src)
        return
    t.used.add(src)
    w = f"{m.name}.weight"
    _check_shape(t.adapter[src][1], (len(idx), t.shape_of(w)[1]), src)
    if max(idx) >= t.shape_of(w)[0]:
        raise Incompatible(f"trainable token index {max(idx)} is outside {m.name} ({t.shape_of(w)[0]} rows)")
    t.add(w, Op("tokens", m.name, src=src, indices=tuple(idx)))


def _untie(t: _Tensors, out_dtype: str) -> tuple[list[OutTensorPlan], dict[str, Any]]:
    """A modules_to_save copy of a tied parameter becomes a tensor of its own, as peft's merge leaves it.

    Returns the extra output tensors and the config edit (tie_word_embeddings=False) that goes with them.
    """
    extra: list[OutTensorPlan] = []
    if not t.untied:
        return extra, {}
    for key in t.untied:
        if len(t.ops[t.storage(key)]) != 1:
            raise Unsupported(f"modules_to_save on tied {key} combined with other changes to it")
    for tied_key, src_key in t.ties.items():
        dtype = _dtype(t.base[src_key][0], out_dtype)
        if tied_key in t.untied:  # e.g. lm_head copy: new tensor, the embedding is kept
            op = t.ops[src_key].pop()
            assert op.src is not None  # the copy is a "replace" op, which names its adapter tensor
            extra.append(OutTensorPlan(tied_key, None, dtype, t.adapter[op.src][1], (op,)))
        elif src_key in t.untied:  # embedding copy: the head keeps the original values
            extra.append(OutTensorPlan(tied_key, src_key, dtype, t.base[src_key][1]))
    return extra, {"tie_word_embeddings": False}


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
