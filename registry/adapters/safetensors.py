"""Read safetensors files as plain data: the header, and a scan of the values (no torch).

The header is an 8-byte little-endian length followed by that much JSON. Everything is checked
against the file's real size before anything is trusted, so a truncated or hostile file is a
clear CorruptFile error, never a crash or a huge allocation. This is the one header reader: the
registration, the static check and the merge engine (which streams the bytes a `TensorInfo`
points at) all take their tensors from `read_header`.
"""

from __future__ import annotations

import json
import math
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

from registry.dtypes import ITEMSIZE, SAFETENSORS_CODES
from registry.errors import CorruptFile

DEFAULT_MAX_HEADER = 100 * 1024 * 1024


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of a safetensors file: what it is and which bytes of `file` hold it."""

    name: str
    dtype: str  # safetensors code: "BF16", "F32", ...
    shape: tuple[int, ...]
    start: int  # absolute offset in the file
    end: int
    file: Path

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def offset(self) -> int:
        return self.start

    @property
    def nbytes(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class Header:
    path: str
    tensors: dict[str, TensorInfo]
    metadata: dict[str, str]
    data_start: int
    file_size: int


def read_header(path: Path, *, max_header_bytes: int = DEFAULT_MAX_HEADER) -> Header:
    """Parse and validate a safetensors header. Raises CorruptFile naming the file and the problem."""
    path = Path(path)
    size = os.path.getsize(path)
    name = path.name
    if size < 8:
        raise CorruptFile(f"{name}: not a safetensors file (only {size} bytes)", path=str(path))
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        if n > max_header_bytes:
            raise CorruptFile(f"{name}: safetensors header of {n} bytes exceeds the limit of {max_header_bytes}",
                              path=str(path))
        if 8 + n > size:
            raise CorruptFile(f"{name}: truncated safetensors file (header says {n} bytes, file has {size - 8})",
                              path=str(path))
        raw = f.read(n)
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CorruptFile(f"{name}: safetensors header is not valid JSON ({e.__class__.__name__})",
                          path=str(path)) from e
    if not isinstance(doc, dict):
        raise CorruptFile(f"{name}: safetensors header is not a JSON object", path=str(path))
    meta = doc.pop("__metadata__", None) or {}
    data_start = 8 + n
    tensors: dict[str, TensorInfo] = {}
    spans = []
    for tname, info in doc.items():
        try:
            dtype = info["dtype"]
            shape = tuple(int(x) for x in info["shape"])
            lo, hi = (int(x) for x in info["data_offsets"])
        except (KeyError, TypeError, ValueError) as e:
            raise CorruptFile(f"{name}: malformed entry for tensor {tname!r}", path=str(path)) from e
        if dtype not in SAFETENSORS_CODES:
            raise CorruptFile(f"{name}: tensor {tname!r} has unknown dtype {dtype!r}", path=str(path))
        if any(d < 0 for d in shape) or lo < 0 or hi < lo:
            raise CorruptFile(f"{name}: tensor {tname!r} has a negative shape or offset", path=str(path))
        nbytes = math.prod(shape) * ITEMSIZE.get(dtype, 0)
        if dtype != "F4" and hi - lo != nbytes:  # F4 packs two values per byte
            raise CorruptFile(f"{name}: tensor {tname!r} spans {hi - lo} bytes but {dtype}{list(shape)} needs {nbytes}",
                              path=str(path))
        if data_start + hi > size:
            raise CorruptFile(f"{name}: truncated: tensor {tname!r} ends at byte {data_start + hi} of {size}",
                              path=str(path))
        tensors[tname] = TensorInfo(tname, dtype, shape, data_start + lo, data_start + hi, path)
        spans.append((lo, hi))
    spans.sort()
    for (_a0, a1), (b0, _b1) in zip(spans, spans[1:]):
        if b0 < a1:
            raise CorruptFile(f"{name}: tensors overlap in the data section", path=str(path))
    return Header(str(path), tensors, {str(k): str(v) for k, v in meta.items()}, data_start, size)


# the float codes a scan reads, and the numpy type it views their values as (half precision as bits)
SCANNED_DTYPES = {"F16": "uint16", "BF16": "uint16", "F32": "float32", "F64": "float64"}


def iter_values(path: Path, info: TensorInfo, *, chunk_elems: int = 1 << 22) -> Iterator[np.ndarray]:
    """Yield the tensor's raw values in chunks as numpy arrays (bf16 as uint16 bit patterns)."""
    import numpy as np  # only scans need numpy; lookups stay light

    np_dtype = np.dtype(SCANNED_DTYPES[info.dtype])
    if info.numel == 0:
        return
    mm = np.memmap(path, dtype=np_dtype, mode="r", offset=info.start, shape=(info.numel,))
    for i in range(0, info.numel, chunk_elems):
        yield mm[i:i + chunk_elems]


def scan_tensor(path: Path, info: TensorInfo) -> tuple[int, bool]:
    """(non-finite count, all zero) for a float tensor, reading it in chunks."""
    import numpy as np

    bad = 0
    all_zero = True
    for chunk in iter_values(path, info):
        if info.dtype == "BF16":
            bad += int(np.count_nonzero((chunk & 0x7F80) == 0x7F80))
            nz = np.any(chunk & 0x7FFF)
        elif info.dtype == "F16":
            bad += int(np.count_nonzero((chunk & 0x7C00) == 0x7C00))
            nz = np.any(chunk & 0x7FFF)
        else:
            bad += int(chunk.size - np.count_nonzero(np.isfinite(chunk)))
            nz = np.any(chunk != 0)
        if nz:
            all_zero = False
    return bad, all_zero
