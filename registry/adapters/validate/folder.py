"""An adapter folder as files and as weights (no torch).

No links at all (a link in an adapter folder points at something the registry would store
without the author having put it there), no FIFOs, devices or sockets: each entry is lstat'ed
before anything is opened, and files are opened without following links and without blocking.
The weights: every tensor floating point (peft casts integer and boolean tensors silently), the
DoRA magnitude of every module when use_dora is set, one shape for a modules_to_save copy saved
twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from registry.adapters import keys as K
from registry.adapters.safetensors import TensorInfo
from registry.adapters.validate import Finding
from registry.adapters.validate.files import kind
from registry.adapters.validate.safetensors import FLOAT_DTYPES

# the dimensions peft gives each LoRA tensor (conv layers: lora_A / lora_B up to 5)
NDIM = {"A": (2, 5), "B": (2, 5), "B_bias": (1, 1), "emb_A": (2, 2), "emb_B": (2, 2), "magnitude": (1, 1)}


# names that must be regular files when present (a directory under one of them is refused, not skipped)
FILE_NAMES = {"adapter_config.json", "adapter_model.safetensors", "README.md", "trainer_state.json",
              "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "training_args.bin"}


# the tensor-name markers of the methods whose weights tell them apart, most specific first
MARKERS = ((".lora_E", "ADALORA"), (".lora_A.", "LORA"), (".lora_embedding_A", "LORA"), (".ia3_l", "IA3"),
           (".hada_w1", "LOHA"), (".lokr_w1", "LOKR"))
FAMILIES = {fam for _m, fam in MARKERS}


def family(names: Iterable[str]) -> str | None:
    """The method whose weights these are (None when the names do not say)."""
    names = list(names)
    return next((fam for marker, fam in MARKERS if any(marker in n for n in names)), None)


def check_entries(folder: Path, names: Iterable[str] | None = None) -> list[Finding]:
    """Links and special files among the folder's entries (or only `names` of it), nothing opened."""
    out: list[Finding] = []
    paths = sorted(Path(folder).iterdir()) if names is None else [Path(folder) / n for n in names]
    for p in paths:
        k = kind(p)
        if k == "link":
            out.append(Finding("FOLDER_SYMLINK", f"{p.name}: a symlink in the adapter folder (to {p.readlink()})",
                               file=p.name))
        elif k == "dir" and p.name in FILE_NAMES:
            out.append(Finding("FOLDER_SPECIAL_FILE", f"{p.name}: a directory where a file belongs", file=p.name))
        elif k == "special":
            out.append(Finding("FOLDER_SPECIAL_FILE", f"{p.name}: not a regular file (FIFO, device or socket)",
                               file=p.name))
    return out


def check_weights(conf: Mapping[str, Any], tensors: Mapping[str, TensorInfo], *, file: str) -> list[Finding]:
    """The adapter's tensors against what they must be: floats, DoRA magnitudes, one shape per copy."""
    out: list[Finding] = []
    if not tensors:
        return [Finding("ST_EMPTY", f"{file} holds no tensors", file=file)]
    not_float = [n for n, i in tensors.items() if i.dtype not in FLOAT_DTYPES]
    if not_float:
        n = not_float[0]
        out.append(Finding("WEIGHTS_NOT_FLOAT", f"{file}: tensor {n} is {tensors[n].dtype}, not floating point"
                           + (f" (and {len(not_float) - 1} more)" if len(not_float) > 1 else ""), file=file, field=n))
    fam = family(tensors)
    pt = str(conf.get("peft_type", "")).upper()
    if fam is not None and pt in FAMILIES and pt != fam:
        out.append(Finding("CONFIG_PEFT_TYPE_MISMATCH", f"adapter_config.json: peft_type is {pt} but {file} holds "
                           f"{fam} weights", file="adapter_config.json", field="peft_type"))
    lay = K.layout(dict(tensors))
    for module, mt in lay.modules.items():
        for role, info in mt.parts.items():
            lo, hi = NDIM[role]
            if not lo <= len(info.shape) <= hi:
                out.append(Finding("WEIGHTS_SHAPE", f"{file}: {module} {role} has shape {list(info.shape)}, not "
                                   f"{lo}{'' if lo == hi else f' to {hi}'}-dimensional", file=file, field=module))
    for module, info in lay.tokens.items():
        if len(info.shape) != 2:
            out.append(Finding("WEIGHTS_SHAPE", f"{file}: {module} trainable token rows have shape {list(info.shape)}",
                               file=file, field=module))
    if conf.get("use_dora") is True:
        bare = [m for m, mt in lay.modules.items()
                if ({"A", "B"} <= set(mt.parts) or {"emb_A", "emb_B"} <= set(mt.parts)) and "magnitude" not in mt.parts]
        if bare:
            out.append(Finding("WEIGHTS_DORA_MAGNITUDE_MISSING", f"{file}: use_dora is set but {bare[0]} has no "
                               "lora_magnitude_vector" + (f" (and {len(bare) - 1} more)" if len(bare) > 1 else ""),
                               file=file, field=f"{bare[0]}.lora_magnitude_vector"))
    for n, info in tensors.items():
        if ".modules_to_save." in n and ".modules_to_save.default." not in n:
            plain = n.replace(".modules_to_save.", ".")
            if plain in tensors and tensors[plain].shape != info.shape:
                out.append(Finding("WEIGHTS_DUPLICATE_COPY", f"{file}: {n} has shape {list(info.shape)} but {plain} "
                                   f"has {list(tensors[plain].shape)}", file=file, field=n))
    return out
