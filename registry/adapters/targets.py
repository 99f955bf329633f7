"""target_modules as leaf module names, the names `ls --target-module` matches (pure; no peft import).

An adapter config names its targets three ways, and peft resolves each against the model:
- a list: each entry matches a module whose name is it or ends with ".entry" (peft writes
  qualified names, `model.layers.0.self_attn.q_proj`, after `target_modules="all-linear"`);
- "all-linear": every nn.Linear / Conv1D except the output layer (peft's
  `tuners_utils._maybe_include_all_linear_layers`; with task_type SEQ_CLS the classifier head too);
- any other string: a regex that must match a module's whole name (`re.fullmatch`).

A list needs nothing but itself (the leaf of each entry). "all-linear" and a regex need the base:
its layout (tensor name -> [shape, dtype]) tells the modules and which are linear (a 2-D `.weight`
that is not an embedding). Without a base they stay in their saved form, and `expanded` says so.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from registry.adapters import patterns

ALL_LINEAR = "all-linear"  # peft's INCLUDE_LINEAR_LAYERS_SHORTHAND (compared lower-cased, as peft does)
OUTPUT_HEADS = ("lm_head", "embed_out")  # the output embeddings of causal LMs (peft: get_output_embeddings)
SEQ_CLS_HEADS = ("score", "classifier")  # peft's SEQ_CLS_HEAD_NAMES
# Leaf names of embedding modules: 2-D weights like a Linear's, but nn.Embedding (not targeted by all-linear).
EMBEDDING_LEAVES = ("wte", "wpe", "shared")


def leaf(name: str) -> str:
    """The last dot-separated part of a module name: `model.layers.0.self_attn.q_proj` -> `q_proj`."""
    return name.rsplit(".", 1)[-1]


def modules(layout: Mapping[str, Any]) -> set[str]:
    """The modules a checkpoint's layout shows (every tensor's name without its last part)."""
    return {k.rsplit(".", 1)[0] for k in layout if "." in k}


def linear_modules(layout: Mapping[str, Any], *, task_type: str | None = None) -> set[str]:
    """The modules `all-linear` targets on a base with this layout.

    A 2-D `.weight` is a Linear or a Conv1D, unless the module is an embedding (its leaf names one)
    or the output layer, which peft leaves out; with task_type SEQ_CLS the classifier head too.
    """
    skip = OUTPUT_HEADS + (SEQ_CLS_HEADS if (task_type or "").upper() == "SEQ_CLS" else ())
    out = set()
    for name, info in layout.items():
        if not name.endswith(".weight") or len(_shape(info)) != 2:
            continue
        mod = name[: -len(".weight")]
        lf = leaf(mod)
        if lf in skip or lf in EMBEDDING_LEAVES or "embed" in lf:
            continue
        out.add(mod)
    return out


def _shape(info: Any) -> list[Any]:
    """The shape of a layout entry ([shape, dtype], or a bare shape)."""
    if isinstance(info, (list, tuple)) and info and isinstance(info[0], (list, tuple)):
        return list(info[0])
    return list(info) if isinstance(info, (list, tuple)) else []


def _excluded(mod: str, exclude: Any) -> bool:
    """peft's exclude_modules test: a regex string matches the whole name, a list entry a suffix."""
    if isinstance(exclude, str):
        return patterns.fullmatch(exclude, mod, what=f"exclude_modules {exclude!r}")
    return any(mod == e or mod.endswith(f".{e}") for e in (exclude or ()) if isinstance(e, str))


def leaf_targets(target_modules: Any, layout: Mapping[str, Any] | None, *, task_type: str | None = None,
                 exclude_modules: Any = None) -> tuple[list[str], bool]:
    """(the leaf names an adapter targets, sorted; whether they are resolved to module names).

    A list is always resolved. "all-linear" and a regex are expanded against `layout` (a base's),
    and stay as saved (`[target_modules]`, False) without one, or when the base has no module they
    match (a mismatch the static check reports).
    """
    if target_modules is None:
        return [], True
    if isinstance(target_modules, str):
        if layout is None:
            return [target_modules], False
        if target_modules.lower() == ALL_LINEAR:
            mods: Iterable[str] = linear_modules(layout, task_type=task_type)
        else:
            what = f"target_modules {target_modules!r}"
            mods = [m for m in modules(layout) if patterns.fullmatch(target_modules, m, what=what)]
        found = sorted({leaf(m) for m in mods if not _excluded(m, exclude_modules)})
        return (found, True) if found else ([target_modules], False)
    return sorted({leaf(str(t)) for t in target_modules}), True
