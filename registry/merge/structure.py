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


def load_structure(base_dir: Path) -> Structure:
    """Instantiate the base's architecture on the meta device and describe its modules.

    Raises:
        Unsupported: quantized bases, remote code, architectures transformers cannot build.
    """
    config = read_config(base_dir)
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
