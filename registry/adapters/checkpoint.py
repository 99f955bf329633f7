"""Which files of a Hugging Face model folder are its weights, and the tensors they hold (no torch).

One decision, taken the way transformers' `from_pretrained` takes it: `model.safetensors`, else
`model.safetensors.index.json` and the shards it names. Registering a base (`fingerprint_base`)
and merging into it (`registry.merge`) both ask here, so a base registers with exactly the files
every merge engine will read, and a folder transformers cannot load (shards whose index is lost,
pickles only) is refused at registration with the error the merge would give.
"""

from __future__ import annotations

import json
from pathlib import Path

from registry.adapters.safetensors import DEFAULT_MAX_HEADER, Header, TensorInfo, read_header
from registry.errors import CorruptFile, InvalidModel, UnsafeFormat

SINGLE = "model.safetensors"
INDEX = "model.safetensors.index.json"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt")


def checkpoint_files(folder: Path) -> list[Path]:
    """The weight files of a model folder: the single file, or the index's shards in name order.

    Raises:
        CorruptFile: the index is unreadable or names a file outside the folder.
        InvalidModel: shards the index names are missing, or safetensors without a way to load them.
        UnsafeFormat: only pickle weights.
    """
    folder = Path(folder)
    if (folder / SINGLE).is_file():  # transformers prefers it over an index beside it
        return [folder / SINGLE]
    if (folder / INDEX).is_file():
        return _indexed_shards(folder)
    stray = sorted(p.name for p in folder.glob("*.safetensors"))
    if stray:
        raise InvalidModel(f"{folder}: {', '.join(stray[:5])}{' ...' if len(stray) > 5 else ''} but neither "
                           f"{SINGLE} nor {INDEX}: transformers cannot load these weights", path=str(folder),
                           hint=f"save the model with save_pretrained, which writes {INDEX} beside the shards")
    pickles = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES) if folder.is_dir() else []
    if pickles:
        raise UnsafeFormat(f"{folder}: only pickle weights ({', '.join(pickles)}); safetensors are required",
                           path=str(folder), hint="convert the base first: load it and save_pretrained() it")
    raise InvalidModel(f"{folder}: no {SINGLE} or {INDEX}", path=str(folder))


def _indexed_shards(folder: Path) -> list[Path]:
    index = folder / INDEX
    try:
        weight_map = json.loads(index.read_text())["weight_map"]
        names = sorted(set(weight_map.values()))
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise CorruptFile(f"{index}: unreadable index ({e.__class__.__name__}: {e})", path=str(index)) from e
    outside = [n for n in names if not isinstance(n, str) or Path(n).name != n or n in ("", ".", "..")]
    if outside:  # an index is data from the folder's author: it must not point anywhere else
        raise CorruptFile(f"{index}: names files outside the folder: {outside[:5]}", path=str(index))
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise InvalidModel(f"{folder}: shards listed in the index are missing: {missing}", path=str(folder))
    return [folder / n for n in names]


def read_headers(folder: Path, *, max_header_bytes: int = DEFAULT_MAX_HEADER) -> list[Header]:
    """The checked header of every weight file, in `checkpoint_files` order.

    Raises:
        CorruptFile: a header is bad (see `read_header`), or a tensor appears in two files.
    """
    headers = [read_header(f, max_header_bytes=max_header_bytes) for f in checkpoint_files(folder)]
    seen: dict[str, str] = {}
    for h in headers:
        for name in h.tensors:
            if name in seen:
                raise CorruptFile(f"tensor {name} appears in two shards ({Path(seen[name]).name}, "
                                  f"{Path(h.path).name})", path=h.path)
            seen[name] = h.path
    return headers


def read_checkpoint(folder: Path, *, max_header_bytes: int = DEFAULT_MAX_HEADER) -> dict[str, TensorInfo]:
    """Every tensor of a model folder, in file then offset order (the order the engine reads them)."""
    return {name: info for h in read_headers(folder, max_header_bytes=max_header_bytes)
            for name, info in sorted(h.tensors.items(), key=lambda kv: kv[1].offset)}
