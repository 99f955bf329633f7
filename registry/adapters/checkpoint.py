"""Which files of a Hugging Face model folder are its weights, and the tensors they hold (no torch).

One decision, taken the way transformers' `from_pretrained` takes it: `model.safetensors`, else
`model.safetensors.index.json` and the shards it names. Registering a base (`fingerprint_base`)
and merging into it (`registry.merge`) both ask here, so a base registers with exactly the files
every merge engine will read, and a folder transformers cannot load (shards whose index is lost,
pickles only) is refused at registration with the error the merge would give.
"""

from __future__ import annotations

from pathlib import Path

from registry.adapters.safetensors import DEFAULT_MAX_HEADER, Header, TensorInfo, read_header
from registry.adapters.validate import raise_findings
from registry.adapters.validate.base import INDEX, SINGLE, weight_files
from registry.errors import CorruptFile

__all__ = ["INDEX", "SINGLE", "checkpoint_files", "read_checkpoint", "read_headers"]


def checkpoint_files(folder: Path) -> list[Path]:
    """The weight files of a model folder: the single file, or the index's shards in name order.

    The decision is `validate.base.weight_files`, the one registration's validation takes.

    Raises:
        BaseValidationFailed: the index is unreadable, points outside the folder or names missing
            shards; safetensors without a way to load them; no weights at all.
        UnsafeFormat: only pickle weights.
    """
    folder = Path(folder)
    names, _weight_map, findings = weight_files(folder)
    raise_findings(findings, kind="base")
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
