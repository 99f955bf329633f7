"""peft's module matching, re-stated as pure functions over module names.

Each function mirrors one piece of peft 0.21.2 so that the streaming engine wraps exactly the
modules `PeftModel.from_pretrained` would wrap (tests/merge/test_targets.py checks them against
peft's own functions):

- `lora_target`: `tuners_utils.check_target_module_exists` (target_modules, exclude_modules,
  layers_to_transform / layers_pattern, and the modules_to_save exclusion);
- `rank_and_alpha`: rank_pattern / alpha_pattern, through `registry.adapters.peft_config.pattern_key`
  (`utils.other.get_pattern_key`), the resolver the static check uses too;
- `is_module_to_save`: `utils.other._set_trainable`'s plain `endswith` test.

Every regex from the config is evaluated by registry.adapters.patterns (RE2: linear time, peft's
semantics, a construct RE2 lacks refused with InvalidInput naming the entry).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from registry.adapters import patterns as P
from registry.adapters.peft_config import pattern_key, pattern_value

ALL_LINEAR = "all-linear"
__all__ = ["ALL_LINEAR", "expand_all_linear", "is_module_to_save", "lora_target", "pattern_key", "rank_and_alpha",
           "scaling"]


def lora_target(config: Mapping[str, Any], key: str) -> bool | None:
    """Whether peft wraps module `key` with LoRA: True, False, or None when explicitly excluded."""
    exclude = config.get("exclude_modules")
    if exclude:
        if isinstance(exclude, str):
            if P.fullmatch(exclude, key, what=f"exclude_modules {exclude!r}"):
                return None
        elif key in exclude or any(key.endswith(f".{e}") for e in exclude):
            return None

    modules_to_save = config.get("modules_to_save")
    if modules_to_save and any(P.match(P.module_to_save_pattern(m), key, what=f"modules_to_save entry {m!r}")
                               for m in modules_to_save):
        return None

    targets = config.get("target_modules")
    if targets is None:
        return False
    if isinstance(targets, str):
        return P.fullmatch(targets, key, what=f"target_modules {targets!r}")
    if key in targets:
        return True
    found = any(key.endswith(f".{t}") for t in targets)

    layer_indexes: Any = config.get("layers_to_transform")
    layers_pattern = config.get("layers_pattern")
    using_indexes = layer_indexes is not None and (
        len(layer_indexes) != 0 if isinstance(layer_indexes, list) else True
    )
    if using_indexes and found:
        match = None
        if layers_pattern is None or len(layers_pattern) == 0:
            match = P.match(P.DEFAULT_LAYERS, key, what="the default layer pattern")
        else:
            patterns = [layers_pattern] if isinstance(layers_pattern, str) else layers_pattern
            for pattern in patterns:
                match = P.match(P.layers_pattern(pattern), key, what=f"layers_pattern {pattern!r}")
                if match is not None:
                    break
        if match is None:
            return False
        idx = int(match.group("idx"))
        return idx == layer_indexes if isinstance(layer_indexes, int) else idx in layer_indexes
    return found


def rank_and_alpha(config: Mapping[str, Any], name: str) -> tuple[int, float]:
    """(r, lora_alpha) for module `name`, resolved from rank_pattern / alpha_pattern as peft does."""
    r = pattern_value(config.get("rank_pattern") or {}, name, config.get("r", 8), field="rank_pattern")
    alpha = pattern_value(config.get("alpha_pattern") or {}, name, config.get("lora_alpha", 8), field="alpha_pattern")
    return r, alpha


def scaling(config: Mapping[str, Any], r: int, alpha: float) -> float:
    """peft's `LoraLayer.scaling`: a Python float, alpha / r or alpha / sqrt(r) with rsLoRA."""
    if config.get("use_rslora"):
        return alpha / math.sqrt(r)
    return alpha / r


def is_module_to_save(modules_to_save: Sequence[str] | None, key: str) -> bool:
    """peft's `_set_trainable` test: a bare `endswith`, no dot boundary."""
    if not modules_to_save:
        return False
    return any(key.endswith(t) for t in modules_to_save)


def expand_all_linear(linear_names: Iterable[str], output_embedding: str | None) -> list[str]:
    """`target_modules="all-linear"`: every Linear/Conv1D except the output head."""
    return sorted(n for n in linear_names if n != output_embedding)
