"""Everything in a merged folder besides the weights: index, config, tokenizer, manifest (the card: card.py).

And the folder's life cycle: built in a hidden sibling temporary folder, renamed into place only
when complete, removed on any failure (`staging`).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
from pathlib import Path
from typing import Any

from registry.adapters.inspect import CHAT_TEMPLATE_FILES, PROCESSOR_FILES, TOKENIZER_ONLY_FILES
from registry.errors import AlreadyExists, InvalidModel, RegistryError, translate_os_error
from registry.storage.digest import sha256_file

# copied byte for byte: re-serializing a tokenizer through transformers changes it (reference §3.7)
TOKENIZER_FILES = TOKENIZER_ONLY_FILES
TOKENIZER_MARKERS = ("tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt", "spiece.model")
INDEX = "model.safetensors.index.json"
MANIFEST = "manifest.json"
MANIFEST_FORMAT = "adapter-registry/merged-model/1"


@contextlib.contextmanager
def staging(out_dir: Path):
    """Yield a fresh temporary folder beside `out_dir`; rename it to `out_dir` if the block succeeds."""
    out_dir = Path(out_dir)
    if out_dir.exists():
        raise AlreadyExists(f"{out_dir} already exists", path=str(out_dir))
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".tmp-{out_dir.name}-{secrets.token_hex(4)}"
    try:
        tmp.mkdir()
        yield tmp
        if out_dir.exists():
            raise AlreadyExists(f"{out_dir} appeared while merging", path=str(out_dir))
        os.rename(tmp, out_dir)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, OSError) and not isinstance(e, RegistryError):
            raise translate_os_error(e, path=str(out_dir)) from e
        raise


def tokenizer_source(adapter_dir: Path, base_dir: Path) -> Path:
    """The adapter's folder when it carries a tokenizer (it may have added tokens), else the base's.

    Raises:
        InvalidModel: neither has one; a merged model without its tokenizer cannot be served.
    """
    for d in (Path(adapter_dir), Path(base_dir)):
        if any((d / f).is_file() for f in TOKENIZER_MARKERS):
            return d
    raise InvalidModel(
        f"no tokenizer in the adapter ({adapter_dir}) or the base ({base_dir})",
        hint="add the tokenizer files (tokenizer.json, tokenizer_config.json, ...) to the base folder")


def copy_tokenizer(adapter_dir: Path, base_dir: Path, out: Path) -> str:
    """Copy tokenizer, chat template and processor files byte for byte; returns "adapter" or "base"."""
    src = tokenizer_source(adapter_dir, base_dir)
    for f in TOKENIZER_FILES:
        if (src / f).is_file():
            shutil.copyfile(src / f, out / f)
    has_template = any((src / f).is_file() for f in CHAT_TEMPLATE_FILES) or _inline_template(src)
    template_src = src if has_template else Path(base_dir)
    for f in CHAT_TEMPLATE_FILES:
        if (template_src / f).is_file():
            shutil.copyfile(template_src / f, out / f)
    for f in PROCESSOR_FILES:
        for d in (src, Path(base_dir)):
            if (d / f).is_file():
                shutil.copyfile(d / f, out / f)
                break
    return "adapter" if src == Path(adapter_dir) else "base"


def _inline_template(d: Path) -> bool:
    try:
        return "chat_template" in json.loads((d / "tokenizer_config.json").read_text())
    except (OSError, ValueError):
        return False


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_config(base_dir: Path, out: Path, *, dtype: str, updates: dict[str, Any]) -> dict:
    """config.json of the base with the output dtype and the plan's edits (untie, vocab size)."""
    config = json.loads((Path(base_dir) / "config.json").read_text())
    config["dtype"] = dtype
    if "torch_dtype" in config:
        config["torch_dtype"] = dtype
    config.update(updates)
    write_json(out / "config.json", config)
    return config


def write_generation_config(base_dir: Path, out: Path, config: dict) -> None:
    """The base's generation_config.json as is, else the one transformers derives from config.json."""
    src = Path(base_dir) / "generation_config.json"
    if src.is_file():
        shutil.copyfile(src, out / "generation_config.json")
        return
    gen = {k: config[k] for k in ("bos_token_id", "eos_token_id", "pad_token_id") if config.get(k) is not None}
    gen["_from_model_config"] = True
    write_json(out / "generation_config.json", gen)


def write_index(out: Path, weight_map: dict[str, str]) -> None:
    """model.safetensors.index.json; total_size counts tensor bytes, as transformers does."""
    from registry.adapters.safetensors import read_header

    total = sum(t.nbytes for f in sorted(set(weight_map.values())) for t in read_header(out / f).tensors.values())
    write_json(out / INDEX, {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))})


def write_manifest(out: Path, *, known: dict[str, str], recipe: dict, validation: dict) -> dict[str, str]:
    """manifest.json: sha256 and size of every other file, the recipe and the validation figures.

    `known` holds digests computed while writing (the shards), so they are not read back.
    Returns the digests of all files, manifest included.
    """
    files: dict[str, str] = {}
    for p in sorted(out.rglob("*")):
        if p.is_file():
            rel = p.relative_to(out).as_posix()
            files[rel] = known.get(rel) or sha256_file(p)
    manifest = {
        "format": MANIFEST_FORMAT,
        "files": {k: {"sha256": v, "size": (out / k).stat().st_size} for k, v in files.items()},
        "recipe": recipe,
        "validation": validation,
    }
    write_json(out / MANIFEST, manifest)
    files[MANIFEST] = sha256_file(out / MANIFEST)
    return files
