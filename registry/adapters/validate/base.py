"""A base model folder as transformers would load it, checked before it is registered (no torch).

Hugging Face cache snapshots are accepted: their files are links into the repo's `../../blobs`.
Every link must resolve inside the repository folder (`models--org--name`) of a snapshot, or inside
the folder itself otherwise; FIFOs, devices and sockets are refused without being opened.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path, PurePosixPath
from typing import Any

from registry.adapters.validate import Finding
from registry.adapters.validate.archs import ARCHS, expected_tensors
from registry.adapters.validate.files import kind, read_regular

SINGLE = "model.safetensors"
INDEX = "model.safetensors.index.json"
MAX_JSON = 64 * 1024 * 1024
MAX_LISTED = 5
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt")


def repo_root(folder: Path) -> Path:
    """The folder links may point into: the cache repo of a snapshot (models--org--name), else the folder."""
    f = folder.resolve()
    if f.parent.name == "snapshots" and f.parent.parent.name.startswith(("models--", "datasets--")):
        return f.parent.parent
    return f


def check_files(folder: Path) -> list[Finding]:
    """Links and special files among the folder's entries."""
    out: list[Finding] = []
    root = repo_root(folder)
    for p in sorted(Path(folder).iterdir()):
        k = kind(p)
        if k == "special":
            out.append(Finding("BASE_SPECIAL_FILE", f"{p.name}: not a regular file (FIFO, device or socket)",
                               file=p.name))
        elif k == "link":
            target = p.resolve()
            if not target.is_relative_to(root):
                out.append(Finding("BASE_LINK_OUTSIDE", f"{p.name}: a link to {target}, outside {root}", file=p.name))
                continue
            try:
                mode = os.stat(target).st_mode
            except OSError:
                out.append(Finding("BASE_LINK_OUTSIDE", f"{p.name}: a link to {target}, which does not exist",
                                   file=p.name))
                continue
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                out.append(Finding("BASE_SPECIAL_FILE", f"{p.name}: links to a FIFO, device or socket", file=p.name))
    return out


def _json(folder: Path, name: str) -> tuple[Any, str | None]:
    try:
        raw = read_regular(folder / name, limit=MAX_JSON, follow=True)
    except OSError as e:
        return None, f"cannot be read ({e.strerror or e})"
    if len(raw) > MAX_JSON:
        return None, f"larger than {MAX_JSON} bytes"
    try:
        return json.loads(raw), None
    except RecursionError:
        return None, "nested too deep"
    except (UnicodeDecodeError, ValueError) as e:
        return None, f"not valid JSON ({e.__class__.__name__})"


def read_config(folder: Path) -> tuple[dict[str, Any] | None, list[Finding]]:
    if kind(folder / "config.json") == "missing":
        return None, [Finding("BASE_CONFIG_JSON", f"missing config.json in {folder}", file="config.json")]
    doc, err = _json(folder, "config.json")
    if err or not isinstance(doc, dict):
        return None, [Finding("BASE_CONFIG_JSON", f"config.json: {err or 'not a JSON object'}", file="config.json")]
    out = []
    for k in ("model_type",):
        if k in doc and not isinstance(doc[k], str):
            out.append(Finding("BASE_CONFIG_JSON", f"config.json: {k} must be a string", file="config.json", field=k))
    archs = doc.get("architectures")
    if archs is not None and not (isinstance(archs, list) and all(isinstance(a, str) for a in archs)):
        out.append(Finding("BASE_CONFIG_JSON", "config.json: architectures must be a list of class names",
                           file="config.json", field="architectures"))
    for k in ("vocab_size", "hidden_size", "n_embd", "num_hidden_layers", "n_layer", "intermediate_size"):
        v = doc.get(k)
        if v is not None and not (isinstance(v, int) and not isinstance(v, bool) and 0 < v < 2**40):
            out.append(Finding("BASE_CONFIG_JSON", f"config.json: {k} must be a positive integer, not {v!r}",
                               file="config.json", field=k))
    v = doc.get("tie_word_embeddings")
    if v is not None and not isinstance(v, bool):
        out.append(Finding("BASE_CONFIG_JSON", f"config.json: tie_word_embeddings must be true or false, not {v!r}",
                           file="config.json", field="tie_word_embeddings"))
    return (None if out else doc), out


def weight_files(folder: Path) -> tuple[list[str], dict[str, str] | None, list[Finding]]:
    """(shard names, weight_map or None, findings): the files transformers' from_pretrained would load.

    `model.safetensors`, else `model.safetensors.index.json` and the shards it names.

    Raises:
        UnsafeFormat: only pickle weights (not a finding: the registry never reads pickles of a base)
    """
    folder = Path(folder)
    if (folder / SINGLE).is_file():
        return [SINGLE], None, []
    if kind(folder / INDEX) != "missing":
        doc, err = _json(folder, INDEX)
        if err or not isinstance(doc, dict) or "weight_map" not in doc:
            return [], None, [Finding("BASE_INDEX_JSON", f"{INDEX}: {err or 'no weight_map'}", file=INDEX,
                                      field="weight_map")]
        wm = doc["weight_map"]
        if not isinstance(wm, dict) or not all(isinstance(v, str) for v in wm.values()):
            return [], None, [Finding("BASE_INDEX_WEIGHT_MAP_TYPE", f"{INDEX}: weight_map must map tensor names to "
                                      f"file names, not {type(wm).__name__}", file=INDEX, field="weight_map")]
        names = sorted(set(wm.values()))
        outside = [n for n in names if n in ("", ".", "..") or PurePosixPath(n).name != n or "\\" in n
                   or os.path.isabs(n) or "\0" in n]
        if outside:
            return [], None, [Finding("BASE_INDEX_PATH", f"{INDEX}: weight_map names files outside the folder: "
                                      f"{outside[:MAX_LISTED]}", file=INDEX, field="weight_map")]
        missing = [n for n in names if kind(folder / n) == "missing"]
        if missing:
            return [], None, [Finding("BASE_INDEX_SHARD_MISSING", f"{INDEX}: shards listed in the index are missing: "
                                      f"{missing[:MAX_LISTED]}", file=INDEX, field="weight_map")]
        return names, wm, []
    stray = sorted(p.name for p in folder.glob("*.safetensors"))
    pickles = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES) if not stray else []
    if pickles:
        from registry.errors import UnsafeFormat

        raise UnsafeFormat(f"{folder}: only pickle weights ({', '.join(pickles)}); safetensors are required",
                           path=str(folder), hint="convert the base first: load it and save_pretrained() it")
    if stray:
        return [], None, [Finding("BASE_SHARDS_NO_INDEX", f"{folder.name}: {', '.join(stray[:MAX_LISTED])} but neither "
                                  f"{SINGLE} nor {INDEX}: transformers cannot load these weights", file=INDEX)]
    return [], None, [Finding("BASE_NO_WEIGHTS", f"{folder.name}: no {SINGLE} or {INDEX}", file=SINGLE)]


def check_tensors(config: dict[str, Any], shards: dict[str, dict[str, tuple[int, ...]]],
                  weight_map: dict[str, str] | None) -> list[Finding]:
    """The shards' tensors ({shard: {tensor: shape}}) against the index and the architecture of config.json."""
    out: list[Finding] = []
    where: dict[str, str] = {}
    for shard, tensors in shards.items():
        for t in tensors:
            if t in where:
                out.append(Finding("BASE_TENSOR_DUPLICATE", f"tensor {t} appears in two shards ({where[t]}, {shard})",
                                   file=shard, field=t))
            where.setdefault(t, shard)
    if weight_map is not None:
        wrong = [(t, s) for t, s in weight_map.items() if where.get(t) != s]
        if wrong:
            t, s = wrong[0]
            actual = f"it is in {where[t]}" if t in where else "no shard holds it"
            out.append(Finding("BASE_INDEX_WRONG_SHARD", f"{INDEX}: weight_map puts {t} in {s} but {actual}"
                               + (f" (and {len(wrong) - 1} more)" if len(wrong) > 1 else ""), file=INDEX, field=t))
    want = expected_tensors(config)
    if want is None:
        return out
    shapes = {t: sh for tensors in shards.values() for t, sh in tensors.items()}
    missing = [t for t in want if t not in shapes]
    if missing:
        out.append(Finding("BASE_TENSOR_MISSING", f"{len(missing)} tensors {config.get('model_type')} needs are "
                           f"missing (transformers would initialise them randomly): {', '.join(missing[:MAX_LISTED])}",
                           field=missing[0]))
    for t, shape in want.items():
        if shape is not None and t in shapes and tuple(shapes[t]) != shape:
            out.append(Finding("BASE_SHAPE_CONFIG", f"{t} has shape {list(shapes[t])} but config.json says "
                               f"{list(shape)} (hidden size, vocabulary)", file=where.get(t), field=t))
    return out


def check_tokenizer(folder: Path) -> list[Finding]:
    if kind(folder / "tokenizer.json") == "missing":
        return []
    doc, err = _json(folder, "tokenizer.json")
    if err is None and not (isinstance(doc, dict) and isinstance(doc.get("model"), dict)):
        err = "no tokenizer model in it"
    if err is None:
        try:
            from tokenizers import Tokenizer  # the Rust parser transformers uses (no torch)
        except ImportError:  # pragma: no cover - tokenizers comes with transformers
            return []
        try:
            Tokenizer.from_str(json.dumps(doc))
        except Exception as e:  # the Rust parser raises its own exception type
            err = f"tokenizers cannot load it ({str(e).splitlines()[0][:200] if str(e) else e.__class__.__name__})"
    return [Finding("BASE_TOKENIZER_JSON", f"tokenizer.json: {err}", file="tokenizer.json")] if err else []


def known(config: dict[str, Any]) -> bool:
    """Whether the missing-tensor check covers this architecture."""
    return str(config.get("model_type")) in ARCHS


def check_base_folder(folder: Path, *, max_header_bytes: int = 100 * 1024 * 1024) -> tuple[dict[str, Any] | None,
                                                                                            list[Finding]]:
    """Every finding about a base model folder: files, config.json, index, shard headers, tensors, tokenizer."""
    from registry.adapters.safetensors import read_header
    from registry.errors import CorruptFile

    folder = Path(folder)
    if not folder.is_dir():
        return None, [Finding("BASE_CONFIG_JSON", f"not a folder: {folder}")]
    out = check_files(folder)
    if out:  # nothing is opened in a folder with links outside it or FIFOs
        return None, out
    config, found = read_config(folder)
    out += found
    names, weight_map, found = weight_files(folder)
    out += found
    shards: dict[str, dict[str, tuple[int, ...]]] = {}
    for n in names:
        try:
            h = read_header(folder / n, max_header_bytes=max_header_bytes)
        except CorruptFile as e:
            for f in getattr(e, "findings", None) or [{"code": "ST_TOO_SMALL", "message": e.message}]:
                out.append(Finding(f["code"], f["message"], file=n, field=f.get("field")))
            continue
        shards[n] = {t: i.shape for t, i in h.tensors.items()}
    if config is not None and len(shards) == len(names) and names:
        out += check_tensors(config, shards, weight_map)
    out += check_tokenizer(folder)
    return config, out
