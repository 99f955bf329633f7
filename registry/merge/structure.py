"""The module tree of a base model, as plain data (`Structure`), read off a weightless meta model.

peft matches its targets against `model.named_modules()` and picks the LoRA layer class from the
module's type, so the streaming engine needs the same names, order and types. Instantiating the
architecture on the meta device gives them exactly, in well under a second and without reading a
single weight. Everything downstream (plan.py) works on the `Structure` dataclass and stays pure.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from registry.errors import InvalidModel, Unsupported

# module kinds the streaming engine merges exactly
LINEAR, CONV1D, EMBEDDING, OTHER = "linear", "conv1d", "embedding", "other"


@dataclass(frozen=True)
class Module:
    name: str
    kind: str  # LINEAR | CONV1D | EMBEDDING | OTHER
    params: tuple[str, ...] = ()  # its own parameter names ("weight", "bias")
    type_name: str = ""


@dataclass(frozen=True)
class Structure:
    model_type: str
    modules: tuple[Module, ...]  # named_modules() order, containers included
    ties: dict[str, str] = field(default_factory=dict)  # tied key -> source key (effective ties only)
    input_embedding: str | None = None
    output_embedding: str | None = None
    state_keys: tuple[str, ...] = ()  # the model's state_dict keys, tied duplicates included
    keep_in_fp32: tuple[str, ...] = ()

    def module(self, name: str) -> Module | None:
        return self._by_name().get(name)

    def _by_name(self) -> dict[str, Module]:
        cache = self.__dict__.get("_cache")
        if cache is None:
            cache = {m.name: m for m in self.modules}
            object.__setattr__(self, "_cache", cache)
        return cache


def read_config(base_dir: Path) -> dict:
    path = Path(base_dir) / "config.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as e:
        raise InvalidModel(f"{base_dir}: no config.json", path=str(base_dir)) from e
    except ValueError as e:
        raise InvalidModel(f"{path}: unreadable ({e})", path=str(path)) from e


# Families whose module tree follows from the checkpoint keys alone: the input embedding is an
# nn.Embedding, GPT-2's block projections are Conv1D, every other 2-D weight is an nn.Linear.
# tests/merge/test_structure.py checks fast_structure against the meta model for each of them.
_LLAMA_LIKE = {"llama", "mistral", "qwen2", "qwen3"}
_FAMILIES = {
    **dict.fromkeys(_LLAMA_LIKE, ("model.embed_tokens", "lm_head", ("model.", "lm_head."))),
    "gpt2": ("transformer.wte", "lm_head", ("transformer.", "lm_head.")),
}
_GPT2_CONV1D = ("c_attn", "c_proj", "c_fc", "q_attn")


def _natural(name: str):
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in name.split(".")]


def fast_structure(config: dict, shapes: dict[str, tuple[int, ...]]) -> Structure | None:
    """The Structure of a well-known family read off its checkpoint keys, without transformers.

    Importing transformers' modeling code and building a meta model costs seconds and ~150 MB,
    more than the merge itself for small models. Returns None when unsure (the caller then builds
    the meta model): unknown family, keys outside the family's layout, implicit tie setting.
    Module order is natural order with the head last; merge order only matters between modules
    sharing a tensor (the tied embedding and head), and there it matches named_modules().
    """
    family = _FAMILIES.get(config.get("model_type", ""))
    if family is None or "tie_word_embeddings" not in config:
        return None
    emb, head, prefixes = family
    keys = list(shapes)
    if not all(k.startswith(prefixes) for k in keys) or f"{emb}.weight" not in keys:
        return None
    tied = bool(config["tie_word_embeddings"])
    ties = {f"{head}.weight": f"{emb}.weight"} if tied else {}
    state = list(keys) + [k for k in ties if k not in keys]
    if f"{head}.weight" not in state:
        return None
    params: dict[str, list[str]] = {}
    for k in state:
        mod, _, p = k.rpartition(".")
        params.setdefault(mod, []).append(p)
    names = set(params)
    for mod in list(params):
        parts = mod.split(".")
        names.update(".".join(parts[:i]) for i in range(1, len(parts)))
    modules = [Module("", OTHER)]
    for name in sorted(names - {head}, key=_natural) + [head]:
        ps = tuple(sorted(params.get(name, ()), key=lambda p: p != "weight"))
        kind = OTHER
        if name in (emb, "transformer.wpe"):
            kind = EMBEDDING
        elif "weight" in ps and len(shapes.get(f"{name}.weight", shapes.get(ties.get(f"{name}.weight", ""), ()))) == 2:
            last = name.rsplit(".", 1)[-1]
            kind = CONV1D if config["model_type"] == "gpt2" and last in _GPT2_CONV1D else LINEAR
        modules.append(Module(name, kind, ps, kind))
    return Structure(model_type=config["model_type"], modules=tuple(modules), ties=ties,
                     input_embedding=emb, output_embedding=head, state_keys=tuple(state))


def load_structure(base_dir: Path, shapes: dict[str, tuple[int, ...]] | None = None,
                   adapter_config: dict | None = None) -> Structure:
    """The base's module tree: from the checkpoint keys for well-known families, else by
    instantiating the architecture on the meta device.

    Raises:
        Unsupported: quantized bases, remote code, architectures transformers cannot build.
    """
    config = read_config(base_dir)
    if shapes is not None and not isinstance((adapter_config or {}).get("target_modules"), str):
        # (a regex target can match parameterless modules, which only the meta model knows)
        fast = fast_structure(config, shapes)
        if fast is not None and not config.get("quantization_config"):
            return fast
    if config.get("quantization_config"):
        method = config["quantization_config"].get("quant_method", "?")
        raise Unsupported(f"the base is quantized ({method}); only the peft engine can merge into it")
    if config.get("auto_map"):
        raise Unsupported("the base needs remote code (auto_map); not built by the streaming engine")

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.pytorch_utils import Conv1D

    try:
        cfg = AutoConfig.from_pretrained(base_dir)
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(cfg)
    except (ValueError, KeyError, ImportError, OSError) as e:
        raise Unsupported(f"cannot build the base architecture on the meta device: {e}") from e

    modules = []
    for name, mod in model.named_modules():
        if isinstance(mod, Conv1D):
            kind = CONV1D
        elif type(mod) is torch.nn.Linear:
            kind = LINEAR
        elif type(mod) is torch.nn.Embedding:
            kind = EMBEDDING
        else:
            kind = OTHER
        params = tuple(n for n, _ in mod.named_parameters(recurse=False))
        modules.append(Module(name, kind, params, type(mod).__name__))

    def name_of(target):
        if target is None:
            return None
        return next((n for n, m in model.named_modules() if m is target), None)

    ties = dict(getattr(model, "all_tied_weights_keys", None) or {})
    return Structure(
        model_type=config.get("model_type", ""),
        modules=tuple(modules),
        ties=ties,
        input_embedding=name_of(model.get_input_embeddings()),
        output_embedding=name_of(model.get_output_embeddings()),
        state_keys=tuple(model.state_dict().keys()),
        keep_in_fp32=tuple(getattr(model, "_keep_in_fp32_modules", None) or ()),
    )
