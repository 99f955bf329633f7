"""Fingerprint a local Hugging Face model folder without loading its weights."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from registry.adapters.checkpoint import read_headers
from registry.adapters.inspect import TOKENIZER_FILES, canonical_json
from registry.adapters.validate import raise_findings
from registry.adapters.validate.base import check_base_folder
from registry.dtypes import TORCH_NAMES
from registry.errors import InvalidModel
from registry.storage.digest import sha256_file

VOLATILE_CONFIG_KEYS = {"_name_or_path", "transformers_version", "_commit_hash"}
SAMPLE = 64 * 1024


@dataclass(frozen=True)
class BaseFingerprint:
    folder: Path
    revision: str | None
    fingerprint: str
    architecture: str
    model_type: str | None
    config: dict[str, Any]
    config_hash: str
    layout: dict[str, list]            # tensor -> [shape, dtype]
    layout_hash: str
    tokenizer_hash: str | None
    weights_hash: str                   # sampled (sizes + head/tail of every shard) unless full
    vocab_size: int | None
    hidden_size: int | None
    num_layers: int | None
    dtype: str | None
    tie_word_embeddings: bool
    param_count: int
    total_size: int
    files: dict[str, dict[str, Any]]   # relpath -> {size, digest?, shard?}
    tensor_files: dict[str, str]       # tensor -> shard file


def _sample_hash(path: Path, size: int) -> str:
    h = hashlib.sha256(str(size).encode())
    with open(path, "rb") as f:
        for off in sorted({0, max(0, size // 2 - SAMPLE // 2), max(0, size - SAMPLE)}):
            f.seek(off)
            h.update(f.read(SAMPLE))
    return h.hexdigest()


def fingerprint_base(folder: Path, *, revision: str | None = None, full_hash: bool = False,
                     max_header_bytes: int = 100 * 1024 * 1024) -> BaseFingerprint:
    """Fingerprint = sha256(revision, config hash, tensor-layout hash, tokenizer hash, weights hash).

    The folder is validated first (`validate.base.check_base_folder`): every finding at once, as
    BaseValidationFailed, and nothing is read further.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InvalidModel(f"not a folder: {folder}")
    _config, findings = check_base_folder(folder, max_header_bytes=max_header_bytes)
    raise_findings(findings, kind="base")
    cfg_path = folder / "config.json"
    try:
        config = json.loads(cfg_path.read_text())
    except FileNotFoundError as e:
        raise InvalidModel(f"missing config.json in {folder}") from e
    except json.JSONDecodeError as e:
        raise InvalidModel(f"config.json is not valid JSON ({e})") from e
    stable = {k: v for k, v in config.items() if k not in VOLATILE_CONFIG_KEYS}
    config_hash = hashlib.sha256(canonical_json(stable)).hexdigest()
    layout: dict[str, list] = {}
    tensor_files: dict[str, str] = {}
    files: dict[str, dict[str, Any]] = {}
    params = 0
    wh = hashlib.sha256()
    dtypes: dict[str, int] = {}
    for hdr in read_headers(folder, max_header_bytes=max_header_bytes):
        shard = Path(hdr.path)
        rel = shard.name
        digest = sha256_file(shard) if full_hash else None
        files[rel] = {"size": hdr.file_size, "role": "weights", **({"digest": digest} if digest else {})}
        wh.update(f"{rel}\0{digest or _sample_hash(shard, hdr.file_size)}\n".encode())
        for name, info in hdr.tensors.items():
            layout[name] = [list(info.shape), TORCH_NAMES.get(info.dtype, info.dtype)]
            tensor_files[name] = rel
            params += info.numel
            dtypes[info.dtype] = dtypes.get(info.dtype, 0) + info.numel
    layout_hash = hashlib.sha256(canonical_json(layout)).hexdigest()
    tok = sorted(p for p in folder.iterdir() if p.is_file() and p.name in TOKENIZER_FILES)
    tokenizer_hash = None
    if tok:
        th = hashlib.sha256()
        for p in tok:
            d = sha256_file(p)
            files[p.name] = {"size": p.stat().st_size, "role": "tokenizer", "digest": d}
            th.update(f"{p.name}\0{d}\n".encode())
        tokenizer_hash = th.hexdigest()
    for extra in ("config.json", "generation_config.json", "model.safetensors.index.json"):
        p = folder / extra
        if p.is_file():
            files[extra] = {"size": p.stat().st_size, "role": "config", "digest": sha256_file(p)}
    weights_hash = wh.hexdigest()
    fp = hashlib.sha256(canonical_json(["v1", revision or "", config_hash, layout_hash, tokenizer_hash or "",
                                        weights_hash])).hexdigest()
    text = config.get("text_config") if isinstance(config.get("text_config"), dict) else config
    archs = config.get("architectures") or [config.get("model_type") or "unknown"]
    main_dtype = TORCH_NAMES.get(max(dtypes, key=lambda d: dtypes[d])) if dtypes else None
    return BaseFingerprint(
        folder=folder.resolve(), revision=revision, fingerprint=fp, architecture=archs[0],
        model_type=config.get("model_type"), config=config, config_hash=config_hash, layout=layout,
        layout_hash=layout_hash, tokenizer_hash=tokenizer_hash, weights_hash=weights_hash,
        vocab_size=text.get("vocab_size"), hidden_size=text.get("hidden_size") or text.get("n_embd"),
        num_layers=text.get("num_hidden_layers") or text.get("n_layer"), dtype=main_dtype,
        tie_word_embeddings=_tied(config, text, layout),
        param_count=params, total_size=sum(os.path.getsize(folder / f) for f in files), files=files,
        tensor_files=tensor_files,
    )


def human_size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def _tied(config: dict, text: dict, layout: dict) -> bool:
    """Whether input and output embeddings share one tensor (the config says; else the layout)."""
    for c in (config, text):
        if "tie_word_embeddings" in c:
            return bool(c["tie_word_embeddings"])
    return not any(k.endswith("lm_head.weight") for k in layout)


CARD_KEYS = ("license", "pipeline_tag", "tags", "library_name", "language")
LIST_CARD_KEYS = ("tags", "language")  # a string or a list of strings on the Hub; the others one string


def read_card(folder: Path) -> dict[str, Any]:
    """What the folder's model card (README.md front matter, read with huggingface_hub's ModelCard)
    says about the model: license, pipeline_tag, tags, library_name, language, those it sets.

    A folder without a README.md, or whose front matter is not a valid card, has an empty card: it
    describes the model, it is not needed to fingerprint or use it.
    """
    readme = Path(folder) / "README.md"
    if not readme.is_file():
        return {}
    try:
        import yaml  # type: ignore[import-untyped]  # (PyYAML, huggingface_hub's dependency, ships no stubs)
        from huggingface_hub import ModelCard
    except ImportError:  # the card is optional (the `ml` extra brings huggingface_hub)
        return {}

    try:
        data = ModelCard(readme.read_text(encoding="utf-8"), ignore_metadata_errors=True).data.to_dict()
    except (ValueError, OSError, yaml.YAMLError):  # UnicodeDecodeError is a ValueError
        return {}
    return card_fields(data)


def card_fields(data: dict[str, Any]) -> dict[str, Any]:
    """The card keys the registry keeps, in the shapes the Hub gives them: license, pipeline_tag
    and library_name a string; tags and language a string or a list of strings. Anything else
    (`pipeline_tag: [a, b]`, `license: {...}`) is dropped: a merged model's card and a search
    filter could not use it, and a list where a string belongs broke the merge (issue 12 review)."""
    out: dict[str, Any] = {}
    for k in CARD_KEYS:
        v = data.get(k)
        if isinstance(v, str) and v:
            out[k] = v
        elif k in LIST_CARD_KEYS and isinstance(v, list) and (items := [x for x in v if isinstance(x, str) and x]):
            out[k] = items
    return out
